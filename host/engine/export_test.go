package engine

// TargetsOf is the listeners event eventID of req goes to on a host that runs with o and was
// never started: the pick each host makes on its own, for the external tests.
func TargetsOf(o Options, req SendRequest, eventID string) []*Listener {
	return (&Engine{opts: o}).targets(req, eventID)
}
