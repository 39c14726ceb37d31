package appendlog

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
)

// DeleteBefore records that the owner has consumed every record before p: sealed segments
// wholly before it are deleted (or kept for reuse, with Preallocate), and p is saved as the
// checkpoint where the next Open starts. The checkpoint is not fsynced: losing it in a
// machine crash only makes the owner see consumed records again, so use it where that is
// harmless. A Close after everything was consumed deletes every segment.
func (l *Log) DeleteBefore(p Position) {
	l.delMu.Lock()
	defer l.delMu.Unlock()
	l.mu.Lock()
	if l.released {
		l.mu.Unlock()
		return
	}
	p = l.normalized(p)
	if l.hasConsumed && p.Less(l.consumed) {
		p = l.consumed
	}
	l.consumed, l.hasConsumed = p, true
	var gone []string
	for id, n := range l.sealed {
		if id < p.Seg {
			gone = append(gone, l.segPath(id))
			delete(l.sealed, id)
			delete(l.bases, id)
			l.size -= n
		}
	}
	l.mu.Unlock()
	for _, path := range gone {
		if l.opts.Preallocate && l.recycle(path) {
			continue
		}
		// A Reader may still hold the file open; on Unix that is harmless (it has moved on).
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			l.log.Warn("appendlog: cannot delete a consumed segment; the next Open skips it", "err", err)
		}
	}
	l.writeCheckpoint(p)
}

func (l *Log) writeCheckpoint(p Position) {
	if p == l.lastCkpt {
		return
	}
	var b [20]byte
	binary.LittleEndian.PutUint64(b[:], p.Seg)
	binary.LittleEndian.PutUint64(b[8:], uint64(p.Off))
	binary.LittleEndian.PutUint32(b[16:], crc32.Checksum(b[:16], castagnoli))
	tmp := filepath.Join(l.dir, checkpointName+tmpSuffix)
	err := os.WriteFile(tmp, b[:], 0o640)
	if err == nil {
		err = os.Rename(tmp, filepath.Join(l.dir, checkpointName))
	}
	if err != nil {
		l.log.Warn("appendlog: cannot save the checkpoint; consumed records may be read again after a restart", "err", err)
		return
	}
	l.lastCkpt = p
}
