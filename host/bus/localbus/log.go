package localbus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/trellis-run/trellis/host/bus"
	"github.com/trellis-run/trellis/host/embedded/appendlog"
)

// The log is an appendlog in the directory (its layout is described there) whose records are
// the ones of codec.go. Segments are bus-<id>.log; a compaction is an appendlog Rewrite, a
// bus-<id>.base.log holding the live state that voids every older segment.
const (
	logMagic  = "TRELLIS-BUS-LOG v2\n"
	logPrefix = "bus-"
	logSuffix = ".log"
	// lazyDelay bounds how long deliveries and acks wait for a commit when no Publish comes to
	// carry them: losing them in a crash costs a redelivery, not a message.
	lazyDelay = 5 * time.Millisecond
)

// batch is what one group commit makes visible once durable: per topic, the sequence after the
// last message of the commit. Consumers may see messages below it from then on.
type batch struct {
	c         *appendlog.Commit
	published map[*topic]uint64
}

// openLog opens the log in the directory, replaying every intact record through apply (a torn
// or corrupt tail is cut off), and migrates a log written before the bus used appendlog.
func (b *Bus) openLog() error {
	records := 0
	l, err := appendlog.Open(b.dir, appendlog.Options{
		Magic: logMagic, Prefix: logPrefix, Suffix: logSuffix,
		NoSync: b.opts.NoSync, LazyDelay: lazyDelay, OnCommit: b.committed, Logger: b.opts.Logger,
		// Records build on each other (a delivery on its message, a message on its topic): after
		// a lost commit nothing more may be written, and no segment may be skipped.
		FailStop: true,
	}, func(_ appendlog.Position, rec []byte) error {
		records++
		if err := b.apply(rec); err != nil {
			return corrupt(rec[0], err)
		}
		return nil
	})
	switch {
	case errors.Is(err, appendlog.ErrLocked):
		return fmt.Errorf("%w: %w; give every host its own data directory, or share a bus through Redis", ErrLocked, err)
	case errors.Is(err, appendlog.ErrCorrupt) && !errors.Is(err, ErrCorrupt):
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	case err != nil && !errors.Is(err, ErrCorrupt):
		return fmt.Errorf("%w: %w", ErrIO, err)
	case err != nil:
		return err
	}
	b.alog = l
	if err := b.migrate(records > 0); err != nil {
		l.Kill()
		return err
	}
	return nil
}

// committed runs on the log's committer once a group commit is durable, or failed: its
// messages become visible to consumers, or the bus stops taking writes. It also decides when
// the log has grown enough to be compacted.
func (b *Bus) committed(c *appendlog.Commit) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bt := b.batches[c]
	delete(b.batches, c)
	if b.cur == bt {
		b.cur = nil
	}
	if c == b.compacting {
		b.compacting = nil
	}
	if err := c.Err(); err != nil {
		if b.ioErr == nil {
			b.ioErr = fmt.Errorf("%w: %w", ErrIO, err)
			b.opts.Logger.Error("localbus: the log cannot be written; the bus refuses writes until reopened", "dir", b.dir, "err", err)
		}
		return
	}
	if bt != nil {
		for t, next := range bt.published {
			if next > t.durable {
				t.durable = next
				t.wakeAll()
			}
		}
	}
	if st := b.alog.Stats(); b.compacting == nil && !b.closed &&
		st.Bytes > b.opts.CompactBytes && st.Bytes > 3*b.liveBytes() {
		// The snapshot holds everything logged so far, under mu, so it stands for the records
		// appended and not yet committed too.
		b.compacting = b.alog.Rewrite(b.snapshot())
		b.opts.Logger.Debug("localbus: compacting the log", "dir", b.dir, "from", st.Bytes)
	}
}

// log appends one record and wakes the committer, for a caller that waits for its batch.
// Under Bus.mu.
func (b *Bus) log(body func([]byte) []byte) *batch {
	b.scratch = frame(b.scratch[:0], body)
	c := b.alog.Append(b.scratch)
	b.last = c
	if b.cur == nil || b.cur.c != c {
		b.cur = &batch{c: c, published: map[*topic]uint64{}}
		b.batches[c] = b.cur
	}
	return b.cur
}

// logLazy appends a record nobody waits for (a delivery, an ack, a trim): it is written with
// the next commit, at most lazyDelay later. Under Bus.mu.
func (b *Bus) logLazy(body func([]byte) []byte) {
	b.scratch = frame(b.scratch[:0], body)
	b.last = b.alog.AppendLazy(b.scratch)
}

// wait waits until c is on disk.
func (b *Bus) wait(ctx context.Context, c *appendlog.Commit) error {
	select {
	case <-c.Done():
		switch err := c.Err(); {
		case err == nil:
			return nil
		case errors.Is(err, appendlog.ErrClosed):
			return bus.ErrClosed
		default:
			return fmt.Errorf("%w: %w: %w", bus.ErrUnavailable, ErrIO, err)
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pending is the latest commit appended to when it is not durable yet, else nil. Under mu.
func (b *Bus) pending() *appendlog.Commit {
	if b.last == nil {
		return nil
	}
	select {
	case <-b.last.Done():
		return nil
	default:
		return b.last
	}
}
