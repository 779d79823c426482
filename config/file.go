package config

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// NotAFileError is what ReadRegularFile says of a path that is not a
// regular file of the size allowed.
type NotAFileError struct{ Reason string }

func (e *NotAFileError) Error() string { return e.Reason }

// ReadRegularFile reads the regular file at path, of at most limit bytes.
// Anything else (a directory, a device such as /dev/zero, a FIFO, a socket,
// a bigger file) is a *NotAFileError, found before reading it. The file is
// opened with O_NONBLOCK, so a FIFO without a writer cannot block the open,
// and the opened file itself is examined, so a path swapped between a check
// and the open cannot slip by.
func ReadRegularFile(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if mode := fi.Mode(); !mode.IsRegular() {
		kind := "not a regular file"
		switch {
		case mode.IsDir():
			kind = "a directory, not a file"
		case mode&os.ModeDevice != 0:
			kind = "a device, not a regular file"
		case mode&os.ModeNamedPipe != 0:
			kind = "a named pipe (FIFO), not a regular file"
		case mode&os.ModeSocket != 0:
			kind = "a socket, not a regular file"
		}
		return nil, &NotAFileError{Reason: "is " + kind}
	}
	tooLarge := &NotAFileError{Reason: "is larger than " + sizeText(limit) + ", the most it may hold"}
	if fi.Size() > limit {
		return nil, tooLarge
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit { // it grew after the Stat
		return nil, tooLarge
	}
	return b, nil
}

// sizeText writes a size the way people read it: 1 MiB, 64 KiB, 100 bytes.
func sizeText(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
