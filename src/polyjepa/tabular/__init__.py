"""Tables: a feature tokenizer with regularisation tokens, a feature-subset masker (T-JEPA), a table
loader for CSV/TSV/Parquet files and DataFrames, and the scikit-learn ``TabularEmbedder``."""
