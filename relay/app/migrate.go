package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/postgres"
	"github.com/hookmail/hookmail/relay/spool"
)

// Migration is a stopped hookmail's spool and the Postgres queue, open to
// move everything the first holds into the second (`hookmail queue
// migrate --to postgres`). The spool is only read.
type Migration struct {
	// From names the spool file, To the database (never its password).
	From, To string
	Source   relay.Exporter
	Target   relay.Importer
	closers  []func() error
}

// Close closes both ends.
func (m *Migration) Close() error {
	var errs []error
	for _, c := range m.closers {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}

// OpenMigration opens the spool in spool.dir read-only, and the Postgres
// queue queue.postgres.url names, creating or migrating its tables there,
// whatever queue.backend says: the migration is what comes before
// switching it. The spool must exist and no hookmail may run on it; each
// error names the key or the step that fixes it.
func OpenMigration(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Migration, error) {
	pg := cfg.Queue.Postgres
	if pg.URL == "" && pg.URLFile == "" {
		return nil, &config.Problem{Key: "queue.postgres.url", Message: "is empty, and the migration moves the spool into that database",
			Fix: "set the database's URL, e.g. HOOKMAIL_QUEUE_POSTGRES_URL=postgres://hookmail:PASSWORD@db.example.com/hookmail, or queue.postgres.url_file"}
	}
	url, err := pg.ConnString()
	if err != nil {
		return nil, err
	}
	src, err := spool.OpenExport(cfg.Spool.Dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%w: there is no spool to migrate here; give the --config (or $HOOKMAIL_CONFIG) hookmail ran with, and run from hookmail's working directory when spool.dir (%q) is relative", err, cfg.Spool.Dir)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("%w: only the user hookmail runs as (or root) may read the spool; run this as that user, e.g. with sudo -u", err)
	case err != nil:
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	// No LISTEN: this instance delivers nothing.
	dst, err := postgres.Open(ctx, url, postgres.WithLogger(log), postgres.WithListen(false))
	if err != nil {
		src.Close()
		return nil, fmt.Errorf("queue.postgres.url: %w", err)
	}
	return &Migration{
		From: "spool file " + src.Path(), To: dst.Where(),
		Source: src, Target: dst,
		closers: []func() error{dst.Close, src.Close},
	}, nil
}
