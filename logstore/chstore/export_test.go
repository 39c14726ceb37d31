package chstore

// NewestQueries is how many queries st answered from the newest windows (queryNewest).
func NewestQueries(st *Store) int64 { return st.newest.Load() }
