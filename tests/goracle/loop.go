package main

import (
	"errors"
	"io"
)

// tarLoop reads length-prefixed tars from r and writes each one's listing,
// length-prefixed, to w. TODO(fuzz helper): implement.
func tarLoop(r io.Reader, w io.Writer) error {
	return errors.New("tarLoop: not implemented")
}
