package localstore

// SetDropChunk makes DropBefore delete n nodes a transaction, so tests cross chunk boundaries
// with few rows. Call it before the store is shared.
func SetDropChunk(s *Store, n int) { s.dropChunk = n }
