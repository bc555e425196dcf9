"""R2MR itself: the model, its Modality Reviewer and Rewriter, feature preprocessing and tensor ops."""
