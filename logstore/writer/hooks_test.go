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
	w.sp.closeAppends()
	<-w.sp.prepDone
	if w.sp.rf != nil {
		_ = w.sp.rf.Close()
	}
	_ = w.sp.f.Close()
	_ = unlockDir(w.sp.lock)
	close(w.done)
}
