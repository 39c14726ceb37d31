package isolate

import (
	"bufio"
	"encoding/gob"
	"errors"
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
// decode. Both sides keep one encoder and one decoder for the life of the worker. The plain values
// a frame carries (arguments, results, details) are the exception: they cross in frame.Values, in
// an encoding of our own that is linear in their size where gob's is not (see wireValues).

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
	kindWithdraw                       // host → worker: drop execution ID if it is still queued (answered with codeWithdrawn), else nothing
)

// codeWithdrawn is the code of the answer to a withdrawn execution: it never ran, and the
// supervisor sends it to another worker. It never leaves the package.
const codeWithdrawn = "isolate_withdrawn"

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
	// An execution queued behind another (queueDepth) carries only its caller's own deadline,
	// if any: the worker counts its budget from when it starts it.
	Deadline time.Time
	Stats    *memStats

	// Values carries, on the wire, the plain values that the fields above hold (call arguments,
	// ctx extras, a result and its arguments, an error's details, a host call's arguments, a
	// reply's value, the arguments of a call's hooks, what its hooks handed back), in the order of
	// valueSlots: send moves them here and recv puts them back,
	// so they cross in wireValue's encoding, linear in their size, instead of gob's (see
	// values.go). Outside the pipe it is nil.
	Values *wireValues
}

// valueSlots is how many values frame.Values holds, in the order pack writes them.
const valueSlots = 9

// pack returns a copy of f whose plain values are moved into Values, the structs that held them
// copied (the caller's stay as they were). A frame without such values is returned as it is.
func (f *frame) pack() *frame {
	if f.Call == nil && f.Result == nil && f.Err == nil && f.HostCall == nil && f.Value == nil {
		return f
	}
	out := *f
	vals := make(wireValues, valueSlots)
	if f.Call != nil {
		c := *f.Call
		vals[0], c.Args = argsValue(c.Args), nil
		if c.Ctx != nil {
			hc := *c.Ctx
			vals[1], hc.Extra = mapValue(hc.Extra), nil
			c.Ctx = &hc
		}
		if c.Around != nil {
			// The hooks' arguments, Before's then After's (nil for a hook not asked for).
			a := *c.Around
			steps := []any{nil, nil}
			for i, h := range []**jsvm.HookStep{&a.Before, &a.After} {
				if *h != nil {
					step := **h
					steps[i], step.Args = argsValue(step.Args), nil
					*h = &step
				}
			}
			vals[7], c.Around = steps, &a
		}
		out.Call = &c
	}
	if f.Result != nil {
		r := *f.Result
		vals[2], vals[3] = r.Value, argsValue(r.Args)
		r.Value, r.Args = nil, nil
		if len(r.Hooks) > 0 {
			// Each hook's value, arguments and error details, in the order of Hooks.
			hooks := make([]jsvm.HookOutcome, len(r.Hooks))
			hv := make([]any, len(r.Hooks))
			for i, h := range r.Hooks {
				var details any
				if h.Err != nil {
					e := *h.Err
					details, e.Details = mapValue(e.Details), nil
					h.Err = &e
				}
				hv[i] = []any{h.Result.Value, argsValue(h.Result.Args), details}
				h.Result.Value, h.Result.Args = nil, nil
				hooks[i] = h
			}
			vals[8], r.Hooks = hv, hooks
		}
		out.Result = &r
	}
	if f.Err != nil {
		e := *f.Err
		vals[4], e.Details = mapValue(e.Details), nil
		out.Err = &e
	}
	if f.HostCall != nil {
		h := *f.HostCall
		vals[5], h.Args = argsValue(h.Args), nil
		out.HostCall = &h
	}
	vals[6], out.Value = f.Value, nil
	out.Values = &vals
	return &out
}

// unpack puts the values pack moved into Values back where they belong.
func (f *frame) unpack() error {
	if f.Values == nil {
		return nil
	}
	vals := *f.Values
	f.Values = nil
	if len(vals) != valueSlots {
		return fmt.Errorf("%w: a frame carries %d values, not %d", ErrProtocol, len(vals), valueSlots)
	}
	if f.Call != nil {
		f.Call.Args, _ = vals[0].([]any)
		if f.Call.Ctx != nil {
			f.Call.Ctx.Extra, _ = vals[1].(map[string]any)
		}
		if a := f.Call.Around; a != nil {
			steps, _ := vals[7].([]any)
			if len(steps) != 2 {
				return fmt.Errorf("%w: a frame's hooks carry %d argument lists, not 2", ErrProtocol, len(steps))
			}
			for i, h := range []*jsvm.HookStep{a.Before, a.After} {
				if h != nil {
					h.Args, _ = steps[i].([]any)
				}
			}
		}
	}
	if f.Result != nil {
		f.Result.Value = vals[2]
		f.Result.Args, _ = vals[3].([]any)
		if len(f.Result.Hooks) > 0 {
			hv, _ := vals[8].([]any)
			if len(hv) != len(f.Result.Hooks) {
				return fmt.Errorf("%w: a frame carries values for %d hooks, not %d", ErrProtocol, len(hv), len(f.Result.Hooks))
			}
			for i := range f.Result.Hooks {
				h := &f.Result.Hooks[i]
				v, _ := hv[i].([]any)
				if len(v) != 3 {
					return fmt.Errorf("%w: a hook's values are %d, not 3", ErrProtocol, len(v))
				}
				h.Result.Value = v[0]
				h.Result.Args, _ = v[1].([]any)
				if h.Err != nil {
					h.Err.Details, _ = v[2].(map[string]any)
				}
			}
		}
	}
	if f.Err != nil {
		f.Err.Details, _ = vals[4].(map[string]any)
	}
	if f.HostCall != nil {
		f.HostCall.Args, _ = vals[5].([]any)
	}
	f.Value = vals[6]
	return nil
}

// argsValue and mapValue keep a nil slice or map nil on the wire, as an any holding one is not.
func argsValue(a []any) any {
	if a == nil {
		return nil
	}
	return a
}

func mapValue(m map[string]any) any {
	if m == nil {
		return nil
	}
	return m
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
	// Concrete types that may sit inside an `any` that gob itself encodes: definitions of a
	// Source and the details of a load's errors (every other value crosses in Values).
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

// newLimitedConn is newConn for the supervisor's end: a frame the worker sends that is larger
// than maxFrame fails the read (errFrameTooLarge) before gob allocates a buffer for it.
func newLimitedConn(r io.Reader, w io.Writer, maxFrame int64) *conn {
	return newConn(&frameLimiter{r: r, max: maxFrame}, w)
}

// errFrameTooLarge is a frame whose length prefix is over the reader's cap.
var errFrameTooLarge = errors.New("isolate: frame larger than the host accepts")

// frameLimiter passes a gob stream through and reads each message's length prefix as it goes
// by: gob's own cap is 1 GiB, which a host with several workers must not be made to allocate.
// The caps of Limits keep every frame a worker makes far smaller (its result, console output and
// error, one host call's arguments); this is the host's own bound should one of them fail.
//
// gob writes a message's byte count as an unsigned integer: one byte below 128, else one byte
// holding the negated number of big-endian bytes that follow.
type frameLimiter struct {
	r    io.Reader
	max  int64
	left int64 // bytes of the current message still to pass; 0 between messages
	head []byte
	want int   // bytes of the count still to read, after its first byte (0: none pending)
	err  error // a frame past max: every read from then on fails with it
}

func (l *frameLimiter) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	n, err := l.r.Read(p)
	head := 0 // where the length prefix being read began in p
	for i := 0; i < n; {
		switch {
		case l.left > 0:
			step := min(l.left, int64(n-i))
			l.left -= step
			i += int(step)
		case l.want > 0:
			l.head = append(l.head, p[i])
			l.want--
			i++
			if l.want == 0 {
				var size int64
				for _, b := range l.head {
					size = size<<8 | int64(b)
				}
				l.head = l.head[:0]
				l.start(size)
			}
		default:
			head = i
			c := p[i]
			i++
			if c < 0x80 {
				l.start(int64(c))
			} else if l.want = 256 - int(c); l.want > 8 {
				l.err = fmt.Errorf("%w: a frame's length is %d bytes long", ErrProtocol, l.want)
			}
		}
		if l.err != nil {
			// What came before this frame is passed on whole; the error comes with the next read.
			return head, nil
		}
	}
	return n, err
}

func (l *frameLimiter) start(size int64) {
	if size < 0 || size > l.max {
		l.err = fmt.Errorf("%w (%d bytes, over %d)", errFrameTooLarge, size, l.max)
		return
	}
	l.left = size
}

// send writes one frame and flushes it.
func (c *conn) send(f *frame) error {
	f = f.pack()
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
	if err := f.unpack(); err != nil {
		return nil, err
	}
	return f, nil
}
