package isolate

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

var pageSize = uint64(os.Getpagesize())

// statmFile reads /proc/<pid>/statm through one open file: pread at offset 0 makes the kernel
// produce fresh figures, so the supervisor can sample a busy worker every few milliseconds for
// the cost of one system call.
type statmFile struct {
	f   *os.File
	mu  sync.Mutex
	buf [128]byte
}

func openStatm(pid int) (*statmFile, error) {
	path := "/proc/self/statm"
	if pid > 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/statm"
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return &statmFile{f: f}, nil
}

// read returns the address space and resident set in bytes (zeros once the process is gone).
func (s *statmFile) read() memStats {
	if s == nil {
		return memStats{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n, _ := s.f.ReadAt(s.buf[:], 0)
	b := s.buf[:n]
	size, i := parseUint(b, 0)
	rss, _ := parseUint(b, i)
	return memStats{VmSize: size * pageSize, RSS: rss * pageSize}
}

func (s *statmFile) close() {
	if s != nil {
		_ = s.f.Close()
	}
}

// parseUint reads the space-separated number starting at b[i:], returning it and the index after.
func parseUint(b []byte, i int) (uint64, int) {
	for i < len(b) && b[i] == ' ' {
		i++
	}
	var n uint64
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		n = n*10 + uint64(b[i]-'0')
	}
	return n, i
}

var selfStatm, _ = openStatm(0)

// readSelfStats returns this process's memory figures.
func readSelfStats() memStats { return selfStatm.read() }

// setAddressSpaceLimit sets the soft RLIMIT_AS of this process. The hard limit stays as it was,
// so the next execution may raise the soft one again; JavaScript cannot make system calls.
func setAddressSpaceLimit(bytes uint64) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_AS, &lim); err != nil {
		return
	}
	if bytes > lim.Max {
		bytes = lim.Max
	}
	lim.Cur = bytes
	_ = unix.Setrlimit(unix.RLIMIT_AS, &lim)
}

// guardStdio moves the protocol off file descriptors 0 and 1 and points them at /dev/null and
// stderr, so nothing else in the worker (a stray fmt.Println, a library's debug output) can
// corrupt the frame stream. It returns the protocol's ends.
func guardStdio() (in, out *os.File, err error) {
	inFd, err := unix.FcntlInt(0, unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, nil, fmt.Errorf("isolate: worker: duplicate stdin: %w", err)
	}
	outFd, err := unix.FcntlInt(1, unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, nil, fmt.Errorf("isolate: worker: duplicate stdout: %w", err)
	}
	if err := unix.Dup3(2, 1, 0); err != nil {
		return nil, nil, fmt.Errorf("isolate: worker: point stdout at stderr: %w", err)
	}
	if null, err := os.Open(os.DevNull); err == nil {
		_ = unix.Dup3(int(null.Fd()), 0, 0)
		_ = null.Close()
	}
	os.Stdout = os.Stderr
	return os.NewFile(uintptr(inFd), "isolate-in"), os.NewFile(uintptr(outFd), "isolate-out"), nil
}

// workerSysProcAttr puts a worker in its own process group (a Ctrl-C at the terminal reaches
// the host, which then stops its workers, instead of killing workers under running executions)
// and has the kernel kill it if the host dies.
func workerSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
