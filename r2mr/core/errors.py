"""User-facing errors: each message is one line naming the file, the problem and the fix."""


class R2MRError(Exception):
    """An error the user can fix; the CLI prints it as one line and exits with status 2."""


class DataError(R2MRError):
    """A data set folder, interaction file or feature matrix is missing or malformed."""


class ConfigError(R2MRError):
    """An unknown or badly typed configuration key."""


class TrainingError(R2MRError):
    """Training diverged (non-finite loss) or could not continue; the CLI exits with status 3."""
