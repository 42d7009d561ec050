package view

import (
	"strconv"

	"github.com/rewindtrace/rewind/snapshot"
	"github.com/rewindtrace/rewind/snapshot/schema"
	"github.com/rewindtrace/rewind/snapshot/schema/kinds"
)

// appendStack writes a stack sample's frames, named: innermost first, the
// kernel's then the user's. In JSON it is an array of objects with the
// address, the function (when known) and whether the frame is the
// kernel's; in text, names joined by ';' with a '|' where the kernel
// stack meets the user stack.
func (v *viewer) appendStack(b []byte, c *snapshot.Chunk, i int, et *schema.Event, col *snapshot.Column) []byte {
	row := int(c.Row[i])
	var k, u int
	if fi := et.Field(kinds.FieldKframes); fi >= 0 {
		k = int(c.Column(et.ID, fi).Uint(row))
	}
	if fi := et.Field(kinds.FieldUframes); fi >= 0 {
		u = int(c.Column(et.ID, fi).Uint(row))
	}
	n := min(k+u, col.Field.Count)
	if v.opts.JSON {
		b = append(b, '[')
	}
	for j := 0; j < n; j++ {
		addr := col.UintAt(row, j)
		fr := v.sym.Kernel(addr)
		if j >= k {
			fr = v.sym.User(c.PID[i], addr, j == k)
		}
		if v.opts.JSON {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"addr":"0x`...)
			b = strconv.AppendUint(b, addr, 16)
			b = append(b, '"')
			if fr.Func != "" {
				b = append(b, `,"func":`...)
				b = strconv.AppendQuote(b, fr.Func)
			}
			if fr.Module != "" {
				b = append(b, `,"module":`...)
				b = strconv.AppendQuote(b, fr.Module)
			}
			b = append(b, `,"kernel":`...)
			b = strconv.AppendBool(b, j < k)
			b = append(b, '}')
			continue
		}
		switch {
		case j == k && k > 0:
			b = append(b, '|')
		case j > 0:
			b = append(b, ';')
		}
		b = append(b, fr.String()...)
	}
	if v.opts.JSON {
		b = append(b, ']')
	}
	return b
}
