package pgmodels

import "errors"

// ErrInvalidOptions: Open was given a DSN or option it cannot use; the message names it. Errors
// reaching the server wrap models.ErrUnavailable instead.
var ErrInvalidOptions = errors.New("pgmodels: invalid options")
