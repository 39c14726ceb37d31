package jsvm

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/dop251/goja"
)

func isUncatchable(err error) bool {
	var ie *goja.InterruptedError
	var so *goja.StackOverflowError
	return errors.As(err, &ie) || errors.As(err, &so)
}

func isLimitCode(code string) bool {
	switch code {
	case CodeTimeout, CodeMemoryLimit, CodeStackOverflow, CodeCanceled:
		return true
	}
	return false
}

var limitMessages = map[string]string{
	CodeTimeout:       "execution ran past its timeout",
	CodeMemoryLimit:   "execution allocated past its memory limit",
	CodeStackOverflow: "maximum call depth exceeded",
	CodeCanceled:      "execution was canceled",
}

// mapError turns what goja returned from a runtime into the *Error of the contract. A limit that
// fired wins over whatever exception it caused on its way out.
func (x *execution) mapError(rt *jsRuntime, err error) *Error {
	var so *goja.StackOverflowError
	if errors.As(err, &so) {
		x.trip(CodeStackOverflow)
	}
	if code := x.limitCode(); code != "" {
		e := x.endError(code)
		if inner := x.thrownError(err); inner != nil && inner.Code == code && inner.Stack != "" {
			e.Stack, e.Element, e.File, e.Line, e.Column = inner.Stack, inner.Element, inner.File, inner.Line, inner.Column
		} else {
			var frames []goja.StackFrame
			var ex *goja.Exception
			if errors.As(err, &ex) {
				frames = ex.Stack()
			} else if so != nil {
				frames = so.Stack()
			}
			if ie := (*goja.InterruptedError)(nil); errors.As(err, &ie) {
				frames = ie.Stack()
			}
			e.setFrames(frames)
		}
		return e
	}
	var ie *goja.InterruptedError
	if errors.As(err, &ie) {
		e := &Error{Code: CodeTimeout, Message: fmt.Sprintf("execution interrupted: %v", ie.Value())}
		e.setFrames(ie.Stack())
		return e
	}
	var ex *goja.Exception
	if errors.As(err, &ex) {
		e := x.exceptionError(rt, ex)
		if code := x.limitCode(); code != "" {
			// Reading the exception ran its JavaScript (getters, toJSON, Proxy traps) until a limit
			// ended it: the limit is what ended the execution.
			limit := x.endError(code)
			limit.Stack, limit.File, limit.Line, limit.Column = e.Stack, e.File, e.Line, e.Column
			return limit
		}
		return e
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeJSError, Message: err.Error()}
}

// endError is the error of an execution a limit (code) or an abort ended, without its position.
func (x *execution) endError(code string) *Error {
	x.mu.Lock()
	aborted := x.abortErr
	x.mu.Unlock()
	if aborted != nil {
		e := *aborted
		return &e
	}
	e := &Error{Code: code, Message: limitMessages[code]}
	switch code {
	case CodeTimeout:
		e.Message = fmt.Sprintf("execution ran past its timeout of %s", x.limits.Timeout)
	case CodeMemoryLimit:
		e.Message = fmt.Sprintf("execution allocated past its memory limit of %d bytes", x.limits.MemoryBytes)
	case CodeStackOverflow:
		e.Message = fmt.Sprintf("maximum call depth %d exceeded; look for unbounded recursion", x.limits.MaxCallDepth)
	}
	return e
}

// thrownError finds the callee's *Error behind an exception a proxy rethrew into a caller.
func (x *execution) thrownError(err error) *Error {
	var ex *goja.Exception
	if x.thrown == nil || !errors.As(err, &ex) {
		return nil
	}
	if o, ok := ex.Value().(*goja.Object); ok {
		return x.thrown[o]
	}
	return nil
}

// exceptionError maps a JS exception: Error objects give message, stack and their own fields
// (code among them) as Details; thrown strings and plain objects map too.
func (x *execution) exceptionError(rt *jsRuntime, ex *goja.Exception) *Error {
	e := &Error{Code: CodeJSError}
	val := ex.Value()
	frames := ex.Stack()
	if inner := x.thrownError(ex); inner != nil {
		// Thrown by another element and not caught here: keep where it really went wrong.
		c := *inner
		c.Code = CodeJSError
		if own := framesString(frames); own != "" {
			c.Stack = strings.TrimRight(c.Stack, "\n") + "\n" + own
		}
		return &c
	}
	o, isObj := val.(*goja.Object)
	// Reading the thrown value runs JS (getters, toString, toJSON, Proxy traps), which may throw
	// or loop; do it inside the runtime, still under the execution's limits. A limit interrupts
	// the runtime once, and goja clears the interrupt as the interrupted read returns: a later
	// read would run unbounded, so none is made once a limit has fired.
	read := func(f func()) {
		if x.limitCode() != "" {
			return
		}
		if err := rt.run(f); err != nil && e.Message == "" {
			e.Message = "an exception was thrown whose message could not be read"
		}
	}
	if !isObj {
		read(func() {
			if val == nil || goja.IsUndefined(val) {
				e.Message = "undefined was thrown"
			} else {
				e.Message = val.String()
			}
		})
		e.setFrames(frames)
		return e
	}
	var stack string
	read(func() {
		if msg := o.Get("message"); msg != nil && !goja.IsUndefined(msg) {
			e.Message = msg.String()
			if name := o.Get("name"); name != nil && !goja.IsUndefined(name) && o.ClassName() == "Error" {
				if n := name.String(); n != "" && n != "Error" {
					e.Message = n + ": " + e.Message
				}
			}
		} else if s, err := rt.jsonStringify(goja.Undefined(), o); err == nil && s != nil && !goja.IsUndefined(s) {
			e.Message = s.String()
		} else {
			e.Message = o.String()
		}
		if s := o.Get("stack"); s != nil && !goja.IsUndefined(s) {
			stack = s.String()
		}
	})
	// The error's own fields (code among them); a value too deep or cyclic to export leaves none.
	read(func() {
		if m, ok := rt.fromJS(o).(map[string]any); ok {
			for k, v := range m {
				if k != "message" && k != "stack" {
					if e.Details == nil {
						e.Details = map[string]any{}
					}
					e.Details[k] = v
				}
			}
		}
	})
	if len(frames) > 0 && !(len(frames) == 1 && frames[0].SrcName() == "<native>") {
		e.setFrames(frames)
	} else if stack != "" {
		// A rejected promise carries its stack only in the error's stack property.
		e.setStackString(stack)
	}
	return e
}

// setFrames fills Stack ("at fn (services/X/index.js:3:7)" lines) and File/Line/Column of the
// top JS frame.
func (e *Error) setFrames(frames []goja.StackFrame) {
	e.Stack = framesString(frames)
	for _, f := range frames {
		if f.SrcName() == "<native>" || f.SrcName() == "" {
			continue
		}
		e.File = f.SrcName()
		e.Line, e.Column = positionOf(f.Position())
		break
	}
}

func framesString(frames []goja.StackFrame) string {
	var b strings.Builder
	for _, f := range frames {
		src := f.SrcName()
		name := f.FuncName()
		if src == "<native>" || src == "" {
			// Bindings are Go closures whose names are Go symbols ("github.com/…(*jsRuntime)…"):
			// they say nothing to a JS author and leak the host's layout, so they are left out.
			if name == "" || name == "<native>" || strings.ContainsAny(name, "/*(") {
				continue
			}
			fmt.Fprintf(&b, "at %s (native)\n", name)
			continue
		}
		line, col := positionOf(f.Position())
		if name == "" {
			fmt.Fprintf(&b, "at %s:%d:%d\n", src, line, col)
		} else {
			fmt.Fprintf(&b, "at %s (%s:%d:%d)\n", name, src, line, col)
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// goja writes frames as "\tat fn (file:line:col(pc))".
var gojaFrame = regexp.MustCompile(`at (?:(\S+) \()?([^\s()]+):(\d+):(\d+)(?:\(\d+\))?\)?`)

func (e *Error) setStackString(s string) {
	var lines []string
	for _, m := range gojaFrame.FindAllStringSubmatch(s, -1) {
		line, _ := strconv.Atoi(m[3])
		col, _ := strconv.Atoi(m[4])
		col = fixColumn(line, col)
		if e.File == "" {
			e.File, e.Line, e.Column = m[2], line, col
		}
		if m[1] != "" {
			lines = append(lines, fmt.Sprintf("at %s (%s:%d:%d)", m[1], m[2], line, col))
		} else {
			lines = append(lines, fmt.Sprintf("at %s:%d:%d", m[2], line, col))
		}
	}
	e.Stack = strings.Join(lines, "\n")
}

// maxRememberedErrors bounds the callee errors one execution remembers, so a loop that catches
// millions of them cannot grow the map without end; past it, positions of the caller are used.
const maxRememberedErrors = 1024

// throwError rethrows a callee's failure into the calling runtime rt. A limit ends the whole
// execution (the trip interrupts rt, so no catch runs); any other error becomes a catchable
// Error with the callee's code and message, remembered so its real position is kept.
func (rt *jsRuntime) throwError(e *Error) {
	x := rt.x
	if isLimitCode(e.Code) {
		x.trip(e.Code)
	}
	code := e.Code
	if code == CodeJSError {
		if c, ok := e.Details["code"].(string); ok && c != "" {
			code = c
		}
	}
	details := e.Details
	if d, ok := e.Details["details"].(map[string]any); ok {
		details = d
	} else if details != nil {
		details = nil
	}
	obj := rt.newCodedError(code, e.Message, details)
	if x.thrown == nil {
		x.thrown = map[*goja.Object]*Error{}
	}
	if len(x.thrown) < maxRememberedErrors {
		x.thrown[obj] = e
	}
	panic(obj)
}
