package registry

import "io/fs"

// Options says what to load.
type Options struct {
	// AppDir is the app directory (it holds app.json).
	AppDir string
	// Builtins is the built-in app (elements.FS); nil loads no built-ins.
	Builtins fs.FS
	// Validators run after the built-in checks, keyed by the fullName of a Type or Meta; each is
	// called with every instance on that chain and returns its problems (Element, File and Code
	// may be left empty: they default to the instance, its e.json and "invalid";
	// Element.FieldProblem places one at a field). This is where the host adds the checks that
	// belong to its runtime, such as the cron syntax its scheduler accepts.
	Validators map[string]func(s *Snapshot, el *Element) []Problem
	// Degraded makes Load and Watcher.Start leave out the elements and commons files that have
	// problems, listing them in Snapshot.Problems, instead of refusing the app: what a host that
	// must come up whatever state its files are in needs (one bad element must not keep every
	// other from running). It is what hot reload does when there is no last good version. A
	// problem of the app itself (app.json, extends) still refuses it. Check ignores it.
	Degraded bool
}

// Load reads and validates the app. It returns a *ValidationError listing every problem when
// there is any (nothing is half-loaded, unless opts.Degraded); errors.Is(err, ErrInvalid)
// matches it.
func Load(opts Options) (*Snapshot, error) {
	snap, problems := loadFirst(newScanner(), opts)
	if len(problems) > 0 {
		return nil, &ValidationError{Problems: problems}
	}
	snap.Version = 1
	return snap, nil
}

// Check validates the app and returns every problem, sorted by file and position; empty means
// valid. It is what `trellis check` prints.
func Check(opts Options) []Problem {
	problems, _ := CheckAll(opts)
	return problems
}

// CheckAll validates the app and returns its problems and, apart, its warnings (Problems with
// SeverityWarning), each sorted by file and position. Only problems make the app invalid.
func CheckAll(opts Options) (problems, warnings []Problem) {
	c, problems := newScanner().gather(opts)
	if c != nil {
		snap, tagged := c.evaluate(opts, nil)
		problems = append(problems, problemsOf(tagged)...)
		warnings = snap.Warnings
	}
	sortProblems(problems)
	return dedupeProblems(problems), warnings
}

// loadStrict loads with no fallback: any problem fails the load.
func loadStrict(sc *scanner, opts Options, prev *Snapshot) (*Snapshot, []Problem) {
	c, problems := sc.gather(opts)
	if c == nil {
		sortProblems(problems)
		return nil, dedupeProblems(problems)
	}
	snap, tagged := c.evaluate(opts, prev)
	if problems = append(problems, problemsOf(tagged)...); len(problems) > 0 {
		sortProblems(problems)
		return nil, dedupeProblems(problems)
	}
	return snap, nil
}

// loadFirst is the first load of an app: strict, or with opts.Degraded the elements that have
// problems left out, as reload leaves out a broken unit that has no last good version.
func loadFirst(sc *scanner, opts Options) (*Snapshot, []Problem) {
	if !opts.Degraded {
		return loadStrict(sc, opts, nil)
	}
	c, problems := sc.gather(opts)
	if c == nil || len(problems) > 0 {
		sortProblems(problems)
		return nil, dedupeProblems(problems)
	}
	return sc.reload(opts, &Snapshot{}), nil
}
