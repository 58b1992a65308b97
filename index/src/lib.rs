//! rmx-index: the on-disk, memory-mapped relation index (exact and HNSW search).
