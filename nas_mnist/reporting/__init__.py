"""Looking at a finished or running study: the report folder and its plots."""
