package isolate

import (
	"bufio"
	"bytes"
	"io"
	"sync"
)

// stderrTailBytes is how much of a worker's stderr is kept to explain a crash.
const stderrTailBytes = 4 << 10

// stderrLog keeps the last few KiB of a worker's stderr and remembers whether any line said how
// the Go runtime died. The markers are checked on every line as it passes, because the line
// that names the cause comes first and the traceback after it can be longer than the tail.
type stderrLog struct {
	mu    sync.Mutex
	tail  []byte
	stack bool   // "goroutine stack exceeds": a Go-stack blow-up
	oom   bool   // "out of memory" and friends: an allocation failed under RLIMIT_AS
	cause string // the first "panic: " or "fatal error: " line: why the worker died
	done  chan struct{}
}

func newStderrLog() *stderrLog { return &stderrLog{done: make(chan struct{})} }

var (
	stackMarkers = [][]byte{[]byte("goroutine stack exceeds"), []byte("fatal error: stack overflow")}
	oomMarkers   = [][]byte{[]byte("out of memory"), []byte("cannot allocate memory"), []byte("errno=12"),
		[]byte("address space collisions")} // the race detector's way of saying the same
)

// consume reads r to its end; done is closed after.
func (s *stderrLog) consume(r io.Reader) {
	defer close(s.done)
	br := bufio.NewReaderSize(r, 4096)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			s.add(line)
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}

func (s *stderrLog) add(line []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range stackMarkers {
		if bytes.Contains(line, m) {
			s.stack = true
		}
	}
	for _, m := range oomMarkers {
		if bytes.Contains(line, m) {
			s.oom = true
		}
	}
	if s.cause == "" && (bytes.HasPrefix(line, []byte("panic: ")) || bytes.HasPrefix(line, []byte("fatal error: "))) {
		s.cause = string(bytes.TrimSpace(line))
		if len(s.cause) > 512 {
			s.cause = s.cause[:512] + "..."
		}
	}
	s.tail = append(s.tail, line...)
	if over := len(s.tail) - stderrTailBytes; over > 0 {
		s.tail = append(s.tail[:0], s.tail[over:]...)
	}
}

// String returns the kept tail, trimmed.
func (s *stderrLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(bytes.TrimSpace(s.tail))
}

// summary says in a line or three why the worker died: the runtime's own cause line when there
// is one, else the last lines it wrote.
func (s *stderrLog) summary() string {
	s.mu.Lock()
	cause := s.cause
	s.mu.Unlock()
	if cause != "" {
		return cause
	}
	t := s.String()
	n := 3
	for i := len(t) - 1; i >= 0; i-- {
		if t[i] == '\n' {
			n--
			if n == 0 {
				return t[i+1:]
			}
		}
	}
	return t
}
