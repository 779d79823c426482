// Command spoolstat prints what a stopped hookmail's spool still holds, for
// bench/intake.sh's accounting: "depth=N dead=M". It opens the spool the way
// hookmail does, so run it only once hookmail has exited.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/hookmail/hookmail/relay"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: spoolstat SPOOL_DIR")
		os.Exit(2)
	}
	s, err := relay.OpenSpool(os.Args[1], time.Now)
	if err != nil {
		fmt.Fprintln(os.Stderr, "spoolstat:", err)
		os.Exit(1)
	}
	st, err := s.Stats(context.Background())
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "spoolstat:", err)
		os.Exit(1)
	}
	fmt.Printf("depth=%d dead=%d\n", st.Depth, st.Dead)
}
