package vocab

import (
	"crypto/rand"
	"encoding/hex"
)

// NewID makes a random id with a prefix ("req_…", "node_…", "evt_…", "task_…"): 96 random bits,
// so ids made on different hosts never collide without asking anyone.
func NewID(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}
