package appendlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// maxSpares is how many consumed segment files are kept for reuse.
const maxSpares = 2

// runPreparer keeps one zero-filled segment ready, once the committer says the volume calls
// for it.
func (l *Log) runPreparer() {
	defer close(l.prepDone)
	select {
	case <-l.wantPrep:
	case <-l.stop:
		return
	}
	for {
		f, err := l.preallocate()
		if err != nil {
			l.log.Warn("appendlog: cannot preallocate a segment; appending instead (slower fsyncs)", "err", err)
			select {
			case <-time.After(10 * time.Second):
				continue
			case <-l.stop:
				return
			}
		}
		select {
		case l.prepared <- f:
		case <-l.stop:
			_ = f.Close()
			_ = os.Remove(f.Name())
			return
		}
	}
}

// recycle keeps the file of a consumed segment for reuse as a later one, instead of zero-
// filling a new file: its blocks are allocated and written, so appends into it need no
// metadata update either. Its stale frames are told apart by their segment id. A crash leaves
// only a .tmp file, removed by the next Open. It reports whether the file was kept.
func (l *Log) recycle(path string) bool {
	st, err := os.Stat(path)
	if err != nil || st.Size() < l.opts.SegmentBytes {
		return false
	}
	l.mu.Lock()
	full := len(l.spares) >= maxSpares || l.closed
	l.mu.Unlock()
	if full {
		return false
	}
	spare := filepath.Join(l.dir, "recycle-"+filepath.Base(path)+tmpSuffix)
	if err := os.Rename(path, spare); err != nil {
		return false
	}
	l.mu.Lock()
	l.spares = append(l.spares, spare)
	l.mu.Unlock()
	return true
}

// preallocate returns a file ready to become a segment: a recycled one, or a new one holding
// the magic and zeros up to the segment size. A crash leaves only a .tmp file.
func (l *Log) preallocate() (*os.File, error) {
	l.mu.Lock()
	var spare string
	if n := len(l.spares); n > 0 {
		spare, l.spares = l.spares[n-1], l.spares[:n-1]
	}
	l.mu.Unlock()
	if spare != "" {
		// Its header is already the magic; the rest is overwritten as frames come.
		f, err := os.OpenFile(spare, os.O_WRONLY, 0)
		if err == nil {
			l.mu.Lock()
			l.reused++
			l.mu.Unlock()
			return f, nil
		}
		_ = os.Remove(spare)
	}
	l.prepN++
	path := filepath.Join(l.dir, fmt.Sprintf("prealloc-%d%s", l.prepN, tmpSuffix))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*os.File, error) {
		_ = f.Close()
		_ = os.Remove(path)
		return nil, err
	}
	if _, err := f.WriteString(l.opts.Magic); err != nil {
		return fail(err)
	}
	zeros := make([]byte, 1<<20)
	for off := l.hdr; off < l.opts.SegmentBytes; {
		n := min(int64(len(zeros)), l.opts.SegmentBytes-off)
		if _, err := f.Write(zeros[:n]); err != nil {
			return fail(err)
		}
		off += n
		select {
		case <-l.stop:
			return fail(errors.New("log closing"))
		default:
		}
	}
	if err := l.sync(f); err != nil {
		return fail(err)
	}
	return f, nil
}
