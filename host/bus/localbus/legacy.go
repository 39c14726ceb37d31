package localbus

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
)

// Before the bus used appendlog, its log was one file, bus.log: a header line, then frames of
// a uint32 record length and a uint32 CRC-32C (no segment id), compacted by writing
// bus.log.compact and renaming it over bus.log. Open reads such a log once, writes the state
// it holds as the first segment of the new log, and deletes it.
const (
	legacyName    = "bus.log"
	legacyTmp     = "bus.log.compact"
	legacyHeader  = "TRELLIS-BUS-LOG v1\n"
	legacyFrame   = 8
	legacyMaxSize = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// migrate replays bus.log into the state and rewrites it as the new log, unless the new log
// already holds records: then a migration finished, and only its deletion of bus.log did not.
func (b *Bus) migrate(migrated bool) error {
	path := filepath.Join(b.dir, legacyName)
	// A compaction that crashed before its rename left a partial snapshot: the log is intact.
	if err := os.Remove(filepath.Join(b.dir, legacyTmp)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: remove the unfinished compaction: %w", ErrIO, err)
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: open %s: %w", ErrIO, path, err)
	}
	defer f.Close()
	if !migrated {
		if err := b.replayLegacy(f, path); err != nil {
			return err
		}
		c := b.alog.Rewrite(b.snapshot())
		<-c.Done()
		if err := c.Err(); err != nil {
			return fmt.Errorf("%w: write the log read from %s: %w", ErrIO, path, err)
		}
		b.opts.Logger.Info("localbus: moved the log to segments", "dir", b.dir, "from", legacyName)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("%w: remove %s, now part of the new log: %w", ErrIO, path, err)
	}
	return nil
}

// replayLegacy applies every intact record of an old bus.log. A torn tail ends it, as it did.
func (b *Bus) replayLegacy(f *os.File, path string) error {
	rd := bufio.NewReaderSize(f, 1<<20)
	head := make([]byte, len(legacyHeader))
	if _, err := io.ReadFull(rd, head); err != nil || string(head) != legacyHeader {
		return fmt.Errorf("%w: %s does not start with the bus log header; move it aside to start afresh", ErrCorrupt, path)
	}
	var fh [legacyFrame]byte
	var rec []byte
	for {
		if _, err := io.ReadFull(rd, fh[:]); err != nil {
			return nil // end of log, or a torn frame header
		}
		n := binary.LittleEndian.Uint32(fh[:])
		if n == 0 || n > legacyMaxSize {
			return nil
		}
		if cap(rec) < int(n) {
			rec = make([]byte, n)
		}
		rec = rec[:n]
		if _, err := io.ReadFull(rd, rec); err != nil {
			return nil
		}
		if crc32.Checksum(rec, castagnoli) != binary.LittleEndian.Uint32(fh[4:]) {
			return nil // checksum mismatch: the tail was torn mid-record
		}
		if err := b.apply(rec); err != nil {
			return corrupt(rec[0], err)
		}
	}
}
