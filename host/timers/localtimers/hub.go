package localtimers

import (
	"context"
	"sync"
)

// hubs holds one hub per database file open in this process, so a runner on one handle learns
// of a force-end made through another handle on the same file.
var (
	hubsMu sync.Mutex
	hubs   = map[string]*hub{}
)

type hub struct {
	refs int // open handles on the file; guarded by hubsMu
	path string

	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

func acquireHub(path string) *hub {
	hubsMu.Lock()
	defer hubsMu.Unlock()
	h := hubs[path]
	if h == nil {
		h = &hub{path: path, subs: map[*subscriber]struct{}{}}
		hubs[path] = h
	}
	h.refs++
	return h
}

func (h *hub) release() {
	hubsMu.Lock()
	defer hubsMu.Unlock()
	h.refs--
	if h.refs == 0 {
		delete(hubs, h.path)
	}
}

func (h *hub) publish(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		s.push(id)
	}
}

// subscriber queues ids without bound, so a slow reader delays but never loses a force-end and
// never blocks the ForcedEnd call that publishes.
type subscriber struct {
	out    chan string
	signal chan struct{} // cap 1

	mu    sync.Mutex
	queue []string
}

func (s *subscriber) push(id string) {
	s.mu.Lock()
	s.queue = append(s.queue, id)
	s.mu.Unlock()
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

func (h *hub) subscribe() *subscriber {
	s := &subscriber{out: make(chan string, 16), signal: make(chan struct{}, 1)}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

func (h *hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

// forward delivers the queue to out until ctx ends or done closes (the store closed), then
// closes out.
func (s *subscriber) forward(ctx context.Context, done <-chan struct{}) {
	defer close(s.out)
	for {
		s.mu.Lock()
		q := s.queue
		s.queue = nil
		s.mu.Unlock()
		for _, id := range q {
			select {
			case s.out <- id:
			case <-ctx.Done():
				return
			case <-done:
				return
			}
		}
		select {
		case <-s.signal:
		case <-ctx.Done():
			return
		case <-done:
			return
		}
	}
}
