package main

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strings"
)

const schilyXattr = "SCHILY.xattr."

// listTar prints one canonical line per member of the tar on r, as
// archive/tar's Reader returns it, and the sha256 of the bytes io.Copy
// reads from the member:
//
//	{"data":HEX,"gid":N,"linkname":HEX,"mode":N,"name":HEX,"size":N,"typeflag":N,"uid":N,"xattrs":{HEX:HEX,...}}
//
// Keys are sorted; names, link names, xattr names (after "SCHILY.xattr.")
// and values are hex so every byte survives; xattrs are the SCHILY.xattr.*
// records of Header.PAXRecords (empty values included), sorted. mode is
// hdr.Mode&07777, the bits runtimes apply (hdr.FileInfo().Mode(); the type
// comes from the typeflag). size is hdr.Size. A Go error ends the listing;
// main prints it as "error: ...".
func listTar(r io.Reader, w io.Writer) error {
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		sum := sha256.New()
		if _, err := io.Copy(sum, tr); err != nil {
			return err
		}
		var xattrs []string
		for k, v := range hdr.PAXRecords {
			if strings.HasPrefix(k, schilyXattr) {
				xattrs = append(xattrs, fmt.Sprintf("%q:%q",
					hex.EncodeToString([]byte(k[len(schilyXattr):])),
					hex.EncodeToString([]byte(v))))
			}
		}
		sort.Strings(xattrs)
		fmt.Fprintf(bw, "{\"data\":%q,\"gid\":%d,\"linkname\":%q,\"mode\":%d,\"name\":%q,\"size\":%d,\"typeflag\":%d,\"uid\":%d,\"xattrs\":{%s}}\n",
			hex.EncodeToString(sum.Sum(nil)),
			hdr.Gid,
			hex.EncodeToString([]byte(hdr.Linkname)),
			hdr.Mode&07777,
			hex.EncodeToString([]byte(hdr.Name)),
			hdr.Size,
			hdr.Typeflag,
			hdr.Uid,
			strings.Join(xattrs, ","))
	}
}
