package isolate

import (
	"bufio"
	"encoding/gob"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/trellis-run/trellis/host/jsvm"
)

// The protocol between the supervisor and a worker is a stream of frames in each direction on
// the worker's stdin and stdout. A frame is one gob message; gob prefixes every message with its
// length, so the stream is length-prefixed frames without a framing layer of our own.
//
// Why gob and not JSON: values crossing the boundary must keep their Go types so that a worker
// behaves exactly like the in-process VM — time.Time must stay a time (it becomes a JS Date),
// int64 must stay apart from float64, and NaN and ±Infinity must survive; JSON loses all three.
// gob also sends type descriptions once per stream, so a steady-state frame is small and fast to
// decode. Both sides keep one encoder and one decoder for the life of the worker.

// frameKind says what a frame carries.
type frameKind uint8

const (
	kindInit      frameKind = iota + 1 // host → worker: the pool's default limits; first frame
	kindHello                          // worker → host: ready, with its memory figures
	kindLoad                           // host → worker: a Source (whole, or a delta)
	kindLoaded                         // worker → host: a load was applied (or failed: Err)
	kindExec                           // host → worker: run Call; Version is the source it must run on
	kindCancel                         // host → worker: the caller gave up on execution ID
	kindResult                         // worker → host: execution ID ended (Result, Err)
	kindHostCall                       // worker → host: HostCall, answered by kindHostReply with the same ID
	kindHostReply                      // host → worker: Value or Err for host call ID
)

// frame is the one message type of the protocol; Kind says which fields are set.
type frame struct {
	Kind    frameKind
	ID      uint64 // execution or host-call id
	Version uint64 // source version (load, loaded, exec); on a host call, the execution's id

	Limits   *jsvm.Limits
	Load     *loadMsg
	Call     *jsvm.Call
	Result   *jsvm.Result
	Err      *wireError
	Errs     []wireError // a load's problems, when the VM reported several (errors.Join)
	HostCall *jsvm.HostCall
	Value    any
	// Ended, on a host reply, is the code (canceled or timeout) the execution that made the call
	// must end with: its ctx ended on the host before the call was answered. The worker ends the
	// execution with it before the reply reaches JS, whatever the reply carries, so that JS cannot
	// catch the ctx's error or carry on with a value.
	Ended string
	// Deadline is when an execution must end: the worker's VM and the supervisor's kill timer
	// count from the same instant, so time spent applying a pending load counts on both sides.
	Deadline time.Time
	Stats    *memStats
}

// wireError is an error as it crosses the pipe. Coded is false for a plain Go error from the
// host, which the worker turns back into a plain error (so the VM treats it as it would
// in-process); its Details, if any, are what the error gave with ErrorDetails. Panic marks a
// host call that panicked: Message is the panic's value, Details["goStack"] where it happened,
// and the worker re-raises it in its VM, which handles it as it handles a host panic in-process.
type wireError struct {
	Coded bool
	Panic bool
	jsvm.Error
}

// memStats are a worker's memory figures, in bytes.
type memStats struct {
	RSS    uint64 // resident set
	VmSize uint64 // address space
	// Scale is how much more resident memory than a normal build this worker uses per byte the
	// JavaScript allocates (the race detector's shadow memory); the RSS safeguard scales by it.
	Scale uint64
}

// loadMsg is a Source on the wire: Full for a worker that has nothing (or an unknown version),
// otherwise a delta from version Base.
type loadMsg struct {
	Full *jsvm.Source

	Base       uint64
	AppName    string
	Env        map[string]string
	Timezone   string
	CommonsSet bool
	Commons    map[string]string
	Put        map[string]*jsvm.Element
	Drop       []string
}

func init() {
	// Concrete types that may sit inside an `any` (call args, results, definitions, details).
	// normalize reduces every value to these before it is sent.
	gob.Register(map[string]any{})
	gob.Register([]any{})
	gob.Register(time.Time{})
}

// conn is one end of a worker's pipes: frames out through a buffered encoder guarded by a mutex
// (several goroutines send), frames in through one decoder read by one goroutine.
type conn struct {
	wmu sync.Mutex
	bw  *bufio.Writer
	enc *gob.Encoder
	dec *gob.Decoder
}

func newConn(r io.Reader, w io.Writer) *conn {
	bw := bufio.NewWriterSize(w, 64<<10)
	return &conn{bw: bw, enc: gob.NewEncoder(bw), dec: gob.NewDecoder(bufio.NewReaderSize(r, 64<<10))}
}

// send writes one frame and flushes it.
func (c *conn) send(f *frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.enc.Encode(f); err != nil {
		return fmt.Errorf("isolate: send frame %d: %w", f.Kind, err)
	}
	return c.bw.Flush()
}

// recv reads the next frame. Only one goroutine may call it.
func (c *conn) recv() (*frame, error) {
	f := new(frame) // always a fresh frame: gob leaves fields absent from the message untouched
	if err := c.dec.Decode(f); err != nil {
		return nil, err
	}
	return f, nil
}
