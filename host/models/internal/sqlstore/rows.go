package sqlstore

import (
	"errors"
	"fmt"

	"github.com/trellis-run/trellis/host/models"
)

// maxRowProblems bounds how many bad rows one error lists: a bad import of 100k rows should say
// what is wrong, not repeat it 100k times.
const maxRowProblems = 10

// normalizeRows applies models.Normalize to every row of a bulk insert, naming the row of each
// problem ("row 7: ..."), so both backends refuse a bad batch alike before touching the database.
func normalizeRows(s models.Schema, in []models.Row) ([]models.Row, error) {
	out := make([]models.Row, len(in))
	var errs []error
	for i, r := range in {
		n, err := models.Normalize(s, r)
		if err != nil {
			errs = append(errs, fmt.Errorf("row %d: %w", i, err))
			if len(errs) == maxRowProblems {
				errs = append(errs, errors.New("(more rows have problems; fix these first)"))
				break
			}
			continue
		}
		out[i] = n
	}
	return out, errors.Join(errs...)
}

// FullRow is the stored row for what an insert wrote: every field, NULL where none was given,
// and its id. Bulk inserts return it instead of reading each row back.
func FullRow(fields []models.Field, r models.Row, id int64) models.Row {
	out := make(models.Row, len(fields))
	for _, f := range fields {
		out[f.Name] = r[f.Name]
	}
	out[models.IDField] = id
	return out
}

// Unexpected is the error for a value the driver returned that field f cannot hold.
func Unexpected(f models.Field, v any) error {
	return fmt.Errorf("%w: column %q (%s) holds %T; was the table changed by hand?", models.ErrSchema, f.Name, f.Type, v)
}

// DuplicateID is the error for an insert whose id another row has.
func DuplicateID(sc models.Schema, id any) error {
	return fmt.Errorf("%w: model %s already has a row with id %v; leave id out to get a new one", models.ErrInvalidValue, sc.Model, id)
}
