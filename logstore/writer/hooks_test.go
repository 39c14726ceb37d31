package writer

// crash stops w the way SIGKILL would, as far as the spool can tell: the flusher is abandoned
// mid-work (no drain, no cleanup), what Write calls had handed over is committed (their
// callers may have been acknowledged), files are closed and the lock is dropped. Everything
// else stays on disk for the next Start.
func (w *Writer) crash() {
	w.mu.Lock()
	if w.state != stateStarted {
		w.mu.Unlock()
		return
	}
	w.state = stateStopped
	w.mu.Unlock()
	w.cancel()
	<-w.runDone
	crashSpool(w.sp)
	close(w.done)
}

// crashSpool leaves sp the way SIGKILL would: what appends were acknowledged is on disk, no
// tidy or cleanup runs, the lock is dropped.
func crashSpool(sp *spool) {
	sp.closeAppends()
	_ = sp.rd.Close()
	sp.l.Kill()
}
