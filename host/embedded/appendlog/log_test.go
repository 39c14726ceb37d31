package appendlog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const testMagic = "TESTLOG1\n"

// logBuffer collects what a Log told its logger.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func options(logs *logBuffer) Options {
	return Options{Magic: testMagic, Logger: slog.New(slog.NewTextHandler(logs, nil))}
}

// opened is a Log and the records Open replayed.
type opened struct {
	l       *Log
	records []string
	at      []Position
}

func open(t *testing.T, dir string, opts Options) *opened {
	t.Helper()
	o := &opened{}
	l, err := Open(dir, opts, func(pos Position, payload []byte) error {
		o.records = append(o.records, string(payload))
		o.at = append(o.at, pos)
		return nil
	})
	require.NoError(t, err)
	o.l = l
	t.Cleanup(func() { _ = l.Close() })
	return o
}

func rec(i int) string { return fmt.Sprintf("record-%04d", i) }

func recs(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, rec(i))
	}
	return out
}

// appendWait appends records one frame each, in one Append, and waits for the commit.
func appendWait(t *testing.T, l *Log, records ...string) *Commit {
	t.Helper()
	var frames []byte
	for _, r := range records {
		frames = AppendFrame(frames, []byte(r))
	}
	c := l.Append(frames)
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("commit not done within 10s")
	}
	require.NoError(t, c.Err())
	return c
}

// segments lists the segment files of dir, oldest first.
func segments(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	require.NoError(t, err)
	slices.Sort(m)
	return m
}

func TestAppendReopenReplaysInOrder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o := open(t, dir, options(&logBuffer{}))
	require.Empty(t, o.records)
	c1 := appendWait(t, o.l, recs(0, 3)...)
	c2 := appendWait(t, o.l, recs(3, 5)...)
	require.True(t, c1.End().Less(c2.End()))
	require.Equal(t, c2.End(), o.l.End())
	require.NoError(t, o.l.Close())
	require.NoError(t, o.l.Close(), "Close twice is safe")
	require.ErrorIs(t, o.l.Append(AppendFrame(nil, []byte("late"))).Err(), ErrClosed)

	o = open(t, dir, options(&logBuffer{}))
	require.Equal(t, recs(0, 5), o.records)
	require.True(t, slices.IsSortedFunc(o.at, func(a, b Position) int {
		if a.Less(b) {
			return -1
		}
		return 1
	}))
	appendWait(t, o.l, rec(5))
	require.NoError(t, o.l.Close())
	o = open(t, dir, options(&logBuffer{}))
	require.Equal(t, recs(0, 6), o.records)
	require.Len(t, segments(t, dir), 1, "a restart appends to the newest segment instead of leaving a file each time")
}

func TestGroupCommitSharesFsyncs(t *testing.T) {
	t.Parallel()
	o := open(t, t.TempDir(), options(&logBuffer{}))
	const writers, each = 16, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				appendWait(t, o.l, rec(w*1000+i))
			}
		})
	}
	wg.Wait()
	st := o.l.Stats()
	require.Positive(t, st.Syncs)
	require.Less(t, st.Syncs, int64(writers*each), "concurrent appends share fdatasyncs")
	require.NoError(t, o.l.Close())
	o = open(t, o.l.dir, options(&logBuffer{}))
	require.Len(t, o.records, writers*each)
}

// A crash between write and fdatasync leaves any prefix of the last commit on disk: cutting
// the file anywhere inside the last frame must keep every earlier record and drop that one.
func TestTornTailIsCut(t *testing.T) {
	t.Parallel()
	for _, cut := range []int64{1, 5, HeaderBytes, HeaderBytes + 3} {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			logs := &logBuffer{}
			o := open(t, dir, options(logs))
			appendWait(t, o.l, recs(0, 4)...)
			appendWait(t, o.l, rec(4))
			require.NoError(t, o.l.Close())
			seg := segments(t, dir)[0]
			st, err := os.Stat(seg)
			require.NoError(t, err)
			require.NoError(t, os.Truncate(seg, st.Size()-cut))

			o = open(t, dir, options(logs))
			require.Equal(t, recs(0, 4), o.records)
			require.Contains(t, logs.String(), "cut a torn tail")
			after, err := os.Stat(seg)
			require.NoError(t, err)
			require.Equal(t, st.Size()-int64(HeaderBytes+len(rec(4))), after.Size(), "the file is cut at the last good frame")
			// New records go after the cut and survive the next reopen.
			appendWait(t, o.l, "again")
			require.NoError(t, o.l.Close())
			o = open(t, dir, options(logs))
			require.Equal(t, append(recs(0, 4), "again"), o.records)
		})
	}
}

func TestCorruptFrameEndsTheLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	logs := &logBuffer{}
	o := open(t, dir, options(logs))
	appendWait(t, o.l, recs(0, 6)...)
	require.NoError(t, o.l.Close())
	seg := segments(t, dir)[0]
	data, err := os.ReadFile(seg)
	require.NoError(t, err)
	third := int64(len(testMagic)) + 2*int64(HeaderBytes+len(rec(0)))
	data[third+HeaderBytes+2] ^= 0x40 // a byte of record 2's payload
	require.NoError(t, os.WriteFile(seg, data, 0o640))

	o = open(t, dir, options(logs))
	require.Equal(t, recs(0, 2), o.records, "nothing after a frame that fails its checksum is trusted")
	require.Contains(t, logs.String(), "checksum mismatch")
	st, err := os.Stat(seg)
	require.NoError(t, err)
	require.Equal(t, third, st.Size())
}

func TestTailsThatAreNotTorn(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		tail []byte
		torn bool
	}{
		{"zeros of a preallocated segment", make([]byte, 4096), false},
		{"zeros, then garbage", append(make([]byte, 100), 0xde, 0xad), true},
		{"half a header", []byte{9, 0}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			logs := &logBuffer{}
			o := open(t, dir, options(logs))
			appendWait(t, o.l, recs(0, 3)...)
			require.NoError(t, o.l.Close())
			f, err := os.OpenFile(segments(t, dir)[0], os.O_APPEND|os.O_WRONLY, 0)
			require.NoError(t, err)
			_, err = f.Write(tc.tail)
			require.NoError(t, err)
			require.NoError(t, f.Close())
			o = open(t, dir, options(logs))
			require.Equal(t, recs(0, 3), o.records)
			if tc.torn {
				require.Contains(t, logs.String(), "torn")
			} else {
				require.NotContains(t, logs.String(), "torn")
			}
		})
	}
}

func TestLockedByAnotherOpener(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o := open(t, dir, options(&logBuffer{}))
	_, err := Open(dir, options(&logBuffer{}), nil)
	require.ErrorIs(t, err, ErrLocked)
	require.NoError(t, o.l.Close())
	again := open(t, dir, options(&logBuffer{}))
	require.NoError(t, again.l.Close())
}

const helperEnv = "APPENDLOG_TEST_HOLD_DIR"

// TestHelperHoldLock is the child of TestLockedByAnotherProcess: it opens the log, says so,
// and waits to be killed.
func TestHelperHoldLock(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("helper process of TestLockedByAnotherProcess")
	}
	l, err := Open(dir, Options{Magic: testMagic}, nil)
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	c := l.Append(AppendFrame(nil, []byte("from the child")))
	<-c.Done()
	fmt.Println("LOCKED")
	select {}
}

// The lock holds across processes, and the kernel drops it when its holder is killed.
func TestLockedByAnotherProcess(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("spawns a process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldLock$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	line := make([]byte, 7)
	_, err = io.ReadFull(out, line)
	require.NoError(t, err)
	require.Equal(t, "LOCKED\n", string(line))

	_, err = Open(dir, options(&logBuffer{}), nil)
	require.ErrorIs(t, err, ErrLocked)

	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	o := open(t, dir, options(&logBuffer{}))
	require.Equal(t, []string{"from the child"}, o.records)
}

func TestReaderFollowsAppendsAcrossSegments(t *testing.T) {
	t.Parallel()
	opts := options(&logBuffer{})
	opts.SegmentBytes = 128
	o := open(t, t.TempDir(), opts)
	r := o.l.NewReader(o.l.Start())
	defer r.Close()
	_, err := r.Next()
	require.ErrorIs(t, err, io.EOF)

	var got []string
	var kept [][]byte
	for i := range 40 {
		appendWait(t, o.l, rec(i))
		for {
			p, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err)
			kept = append(kept, p)
			got = append(got, string(p))
			require.Equal(t, int64(HeaderBytes+len(p)), r.Advance())
		}
	}
	require.Equal(t, recs(0, 40), got)
	require.Greater(t, o.l.Stats().Segments, 5, "the log rotated")
	for i, p := range kept {
		require.Equal(t, rec(i), string(p), "payloads stay valid after later reads")
	}
	require.Equal(t, o.l.End(), o.l.Normalize(r.Pos()))

	// Next without Advance reads the same record again.
	r2 := o.l.NewReader(o.l.Start())
	defer r2.Close()
	p1, err := r2.Next()
	require.NoError(t, err)
	p2, err := r2.Next()
	require.NoError(t, err)
	require.Equal(t, p1, p2)
}

// Committed bytes that fail their checksum (a failing disk) are reported, and skipped to the
// end of the segment's committed data.
func TestReaderReportsCorruptCommittedData(t *testing.T) {
	t.Parallel()
	o := open(t, t.TempDir(), options(&logBuffer{}))
	appendWait(t, o.l, recs(0, 3)...)
	seg := segments(t, o.l.dir)[0]
	f, err := os.OpenFile(seg, os.O_RDWR, 0)
	require.NoError(t, err)
	second := int64(len(testMagic)) + int64(HeaderBytes+len(rec(0)))
	_, err = f.WriteAt([]byte{'X'}, second+HeaderBytes)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	r := o.l.NewReader(o.l.Start())
	defer r.Close()
	p, err := r.Next()
	require.NoError(t, err)
	require.Equal(t, rec(0), string(p))
	r.Advance()
	_, err = r.Next()
	require.ErrorIs(t, err, ErrCorrupt)
	require.Equal(t, 2*int64(HeaderBytes+len(rec(0))), r.Advance(), "the rest of the committed data is skipped")
	_, err = r.Next()
	require.ErrorIs(t, err, io.EOF)
	appendWait(t, o.l, "after")
	p, err = r.Next()
	require.NoError(t, err)
	require.Equal(t, "after", string(p))
	r.Advance()

	// A frame stamped for another segment is no frame of this one, checksum or not.
	end := appendWait(t, o.l, "restamped").End()
	f, err = os.OpenFile(seg, os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte{0x77}, end.Off-int64(len("restamped"))-4)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	_, err = r.Next()
	require.ErrorIs(t, err, ErrCorrupt)
	require.Contains(t, err.Error(), "stamped for segment")
}

func TestDeleteBeforeAndCheckpoint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opts := options(&logBuffer{})
	opts.SegmentBytes = 128
	o := open(t, dir, opts)
	var ends []Position
	for i := range 20 {
		ends = append(ends, appendWait(t, o.l, rec(i)).End())
	}
	before := len(segments(t, dir))
	o.l.DeleteBefore(ends[11]) // records 0…11 consumed
	require.Less(t, len(segments(t, dir)), before, "consumed segments are deleted")
	require.NoError(t, o.l.Close())

	o = open(t, dir, opts)
	require.Equal(t, recs(12, 20), o.records, "Open starts at the checkpoint")
	require.Equal(t, o.l.Normalize(ends[11]), o.l.Normalize(o.l.Start()))

	// Everything consumed: a clean close leaves no segment, and ids never restart.
	last := appendWait(t, o.l, rec(20)).End()
	o.l.DeleteBefore(last)
	require.NoError(t, o.l.Close())
	require.Empty(t, segments(t, dir))
	o = open(t, dir, opts)
	require.Empty(t, o.records)
	require.Greater(t, o.l.End().Seg, last.Seg)

	// A damaged checkpoint: every segment is read again (the owner must find that harmless).
	appendWait(t, o.l, rec(21))
	o.l.DeleteBefore(o.l.End())
	appendWait(t, o.l, rec(22))
	o.l.Kill()
	require.NoError(t, os.WriteFile(filepath.Join(dir, checkpointName), []byte("garbage"), 0o640))
	logs := &logBuffer{}
	opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	o = open(t, dir, opts)
	require.Equal(t, recs(21, 23), o.records)
	require.Contains(t, logs.String(), "checkpoint is damaged")
}

func TestRewriteReplacesTheLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opts := options(&logBuffer{})
	opts.SegmentBytes = 128
	o := open(t, dir, opts)
	for i := range 20 {
		appendWait(t, o.l, rec(i))
	}
	require.Greater(t, len(segments(t, dir)), 3)
	pending := o.l.AppendLazy(AppendFrame(nil, []byte("superseded")))
	c := o.l.Rewrite(AppendFrame(AppendFrame(nil, []byte("snap-1")), []byte("snap-2")))
	require.Same(t, pending, c, "records appended before the Rewrite share its commit")
	<-c.Done()
	require.NoError(t, c.Err())
	appendWait(t, o.l, "after")
	require.Equal(t, int64(1), o.l.Stats().Rewrites)
	segs := segments(t, dir)
	require.Len(t, segs, 1)
	require.Contains(t, segs[0], ".base.log")
	require.NoError(t, o.l.Close())

	o = open(t, dir, opts)
	require.Equal(t, []string{"snap-1", "snap-2", "after"}, o.records)
	require.NoError(t, o.l.Close())

	// A crash after the rename but before the older segments were deleted: Open deletes them.
	older := filepath.Join(dir, "seg-0000000000000001.log")
	require.NoError(t, os.WriteFile(older, append([]byte(testMagic), AppendFrame(nil, []byte("void"))...), 0o640))
	o = open(t, dir, opts)
	require.Equal(t, []string{"snap-1", "snap-2", "after"}, o.records)
	require.NoFileExists(t, older)
}

func TestRewriteOfNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o := open(t, dir, options(&logBuffer{}))
	appendWait(t, o.l, recs(0, 3)...)
	c := o.l.Rewrite(nil)
	<-c.Done()
	require.NoError(t, c.Err())
	require.NoError(t, o.l.Close())
	o = open(t, dir, options(&logBuffer{}))
	require.Empty(t, o.records)
}

// Recycled segment files still hold the frames of their earlier life, which pass their
// checksums: the segment stamp keeps them from being read as records, by Open or a Reader.
func TestRecycledSegmentsAreNeverMisread(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	logs := &logBuffer{}
	opts := options(logs)
	opts.SegmentBytes, opts.Preallocate = 4<<10, true
	o := open(t, dir, opts)
	r := o.l.NewReader(o.l.Start())
	payload := strings.Repeat("p", 200)
	n := 0
	for o.l.Stats().Reused < 3 {
		require.Less(t, n, 10_000, "no segment file was reused")
		appendWait(t, o.l, fmt.Sprintf("%s-%06d", payload, n))
		n++
		for {
			_, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err)
			r.Advance()
		}
		o.l.DeleteBefore(r.Pos())
	}
	// What follows lands in recycled files over stale frames; the process then dies.
	var want []string
	for i := range 30 {
		s := fmt.Sprintf("fresh-%03d", i)
		want = append(want, s)
		appendWait(t, o.l, s)
	}
	got := []string{}
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		got = append(got, string(p))
		r.Advance()
	}
	require.NoError(t, r.Close())
	require.Equal(t, want, got)
	o.l.Kill()

	o = open(t, dir, opts)
	require.Equal(t, want, o.records, "no stale frame was taken for a record")
	require.NotContains(t, logs.String(), "torn")
}

func TestFailedCommits(t *testing.T) {
	t.Parallel()
	for _, failStop := range []bool{false, true} {
		t.Run(fmt.Sprintf("FailStop=%v", failStop), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			var seen []error
			var mu sync.Mutex
			opts := options(&logBuffer{})
			opts.FailStop = failStop
			opts.OnCommit = func(c *Commit) {
				mu.Lock()
				seen = append(seen, c.Err())
				mu.Unlock()
			}
			o := open(t, dir, opts)
			appendWait(t, o.l, rec(0))
			o.l.FailCommits(errors.New("disk on fire"))
			c := o.l.Append(AppendFrame(nil, []byte(rec(1))))
			<-c.Done()
			require.ErrorIs(t, c.Err(), ErrIO)
			require.Contains(t, c.Err().Error(), "disk on fire")
			o.l.FailCommits(nil)
			c = o.l.Append(AppendFrame(nil, []byte(rec(2))))
			<-c.Done()
			if failStop {
				require.ErrorIs(t, c.Err(), ErrIO, "a failure is sticky")
			} else {
				require.NoError(t, c.Err(), "the next commit goes where the failed one began")
			}
			mu.Lock()
			require.Len(t, seen, 3, "OnCommit hears of every commit")
			mu.Unlock()
			require.NoError(t, o.l.Close())
			o = open(t, dir, options(&logBuffer{}))
			if failStop {
				require.Equal(t, []string{rec(0)}, o.records)
			} else {
				require.Equal(t, []string{rec(0), rec(2)}, o.records)
			}
		})
	}
}

func TestLazyAppendsAndKill(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opts := options(&logBuffer{})
	opts.LazyDelay = time.Millisecond
	o := open(t, dir, opts)
	c := o.l.AppendLazy(AppendFrame(nil, []byte("lazy")))
	<-c.Done() // within LazyDelay, with no one kicking
	require.NoError(t, c.Err())

	opts.LazyDelay = time.Hour
	o.l.Kill()
	o = open(t, dir, opts)
	require.Equal(t, []string{"lazy"}, o.records)
	lost := o.l.AppendLazy(AppendFrame(nil, []byte("never committed")))
	o.l.Kill()
	<-lost.Done()
	require.ErrorIs(t, lost.Err(), ErrClosed)
	o = open(t, dir, opts)
	require.Equal(t, []string{"lazy"}, o.records, "Kill loses what was not committed, as SIGKILL would")
}

func TestForeignSegments(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o := open(t, dir, options(&logBuffer{}))
	appendWait(t, o.l, rec(0))
	require.NoError(t, o.l.Close())
	bad := filepath.Join(dir, "seg-0000000000000007.log")
	require.NoError(t, os.WriteFile(bad, []byte("not a segment of this log"), 0o640))
	empty := filepath.Join(dir, "seg-0000000000000008.log")
	require.NoError(t, os.WriteFile(empty, []byte(testMagic[:3]), 0o640))
	other := filepath.Join(dir, "owner-notes.txt")
	require.NoError(t, os.WriteFile(other, []byte("the owner's own file"), 0o640))

	_, err := Open(dir, options(&logBuffer{}), nil)
	require.ErrorIs(t, err, ErrCorrupt, "a log whose records build on each other skips nothing")
	require.Contains(t, err.Error(), "move it aside")
	require.FileExists(t, bad)

	logs := &logBuffer{}
	opts := options(logs)
	opts.SetAsideForeign = true
	o = open(t, dir, opts)
	require.Equal(t, []string{rec(0)}, o.records)
	require.FileExists(t, bad+".corrupt")
	require.NoFileExists(t, empty, "a segment whose header never landed held nothing")
	require.FileExists(t, other, "files of the owner are left alone")
	require.Contains(t, logs.String(), "not a segment")
	appendWait(t, o.l, rec(1))
	require.NoError(t, o.l.Close())
	o = open(t, dir, opts)
	require.Equal(t, recs(0, 2), o.records)
}

func TestReplayErrorFailsOpen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o := open(t, dir, options(&logBuffer{}))
	appendWait(t, o.l, recs(0, 3)...)
	require.NoError(t, o.l.Close())
	boom := errors.New("cannot apply")
	_, err := Open(dir, options(&logBuffer{}), func(_ Position, p []byte) error {
		if string(p) == rec(1) {
			return boom
		}
		return nil
	})
	require.ErrorIs(t, err, boom)
	require.Contains(t, err.Error(), "at byte")
	o = open(t, dir, options(&logBuffer{}))
	require.Equal(t, recs(0, 3), o.records, "a failed Open changed nothing and released the lock")
}

func TestAppendRefusesWhatIsNotFrames(t *testing.T) {
	t.Parallel()
	o := open(t, t.TempDir(), options(&logBuffer{}))
	frame := AppendFrame(nil, []byte("x"))
	for _, bad := range [][]byte{[]byte("raw bytes, no frame"), frame[:len(frame)-1], append(slices.Clone(frame), 1, 2)} {
		require.ErrorIs(t, o.l.Append(bad).Err(), ErrInvalidFrames)
		require.ErrorIs(t, o.l.Rewrite(bad).Err(), ErrInvalidFrames)
	}
	c := o.l.Append(nil)
	<-c.Done()
	require.NoError(t, c.Err(), "nothing to commit is done at once")
}

func TestFrames(t *testing.T) {
	t.Parallel()
	buf, start := BeginFrame([]byte("prefix"))
	buf = append(buf, "payload"...)
	buf = FinishFrame(buf, start)
	frame := buf[start:]
	require.Equal(t, len(frame), FrameLen(frame))
	p, n, err := ParseFrame(frame)
	require.NoError(t, err)
	require.Equal(t, "payload", string(p))
	require.Equal(t, len(frame), n)
	for i := range frame {
		if i >= 8 && i < HeaderBytes {
			continue // the segment stamp is not covered: it is written at commit
		}
		frame[i] ^= 0x10
		_, _, err := ParseFrame(frame)
		require.ErrorIs(t, err, ErrCorrupt, "flipped byte %d", i)
		frame[i] ^= 0x10
	}
	_, _, err = ParseFrame(frame[:5])
	require.ErrorIs(t, err, ErrCorrupt)
}

func TestOptions(t *testing.T) {
	t.Parallel()
	for _, o := range []Options{
		{},
		{Magic: "M", Prefix: "a/b"},
		{Magic: "M", Suffix: ".tmp"},
		{Magic: "M", SegmentBytes: 4},
		{Magic: "M", LazyDelay: -time.Second},
	} {
		_, err := Open(t.TempDir(), o, nil)
		require.ErrorIs(t, err, ErrInvalidOptions, "%+v", o)
	}
	_, err := Open("", Options{Magic: "M"}, nil)
	require.ErrorIs(t, err, ErrInvalidOptions)
}

// What a Reader returns, the owner has heard of in OnCommit: a spool counts the rows it holds
// there, and must never read rows it has not counted.
func TestOnCommitComesBeforeReaders(t *testing.T) {
	t.Parallel()
	var l *Log
	var mu sync.Mutex
	var seen []int // records a Reader found during each OnCommit
	opts := options(&logBuffer{})
	opts.OnCommit = func(c *Commit) {
		r := l.NewReader(l.Start())
		defer r.Close()
		n := 0
		for {
			if _, err := r.Next(); err != nil {
				break
			}
			r.Advance()
			n++
		}
		mu.Lock()
		seen = append(seen, n)
		mu.Unlock()
	}
	l, err := Open(t.TempDir(), opts, nil)
	require.NoError(t, err)
	defer l.Close()
	for i := range 5 {
		appendWait(t, l, rec(i))
	}
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []int{0, 1, 2, 3, 4}, seen)
}
