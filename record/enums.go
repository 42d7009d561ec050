package record

import (
	"fmt"
	"strings"

	"github.com/cilium/ebpf/btf"

	"github.com/rewindtrace/rewind/snapshot"
	"github.com/rewindtrace/rewind/snapshot/schema"
)

// kernelEnums reads, from the kernel's BTF, the names of every enum a field
// of kind enum_<name> holds, so that a snapshot read on another machine
// still names them.
func kernelEnums(s *schema.Schema, kernelBTF string) (map[string][]snapshot.EnumValue, error) {
	want := map[string]bool{}
	for _, e := range s.Events() {
		for _, f := range e.Fields {
			if name, ok := strings.CutPrefix(f.Kind, schema.KindEnumPrefix); ok {
				want[name] = true
			}
		}
	}
	if len(want) == 0 {
		return nil, nil
	}
	var (
		spec *btf.Spec
		err  error
	)
	if kernelBTF != "" {
		spec, err = btf.LoadSpec(kernelBTF)
	} else {
		spec, err = btf.LoadKernelSpec()
	}
	if err != nil {
		return nil, fmt.Errorf("load kernel BTF for enum names: %w", err)
	}
	out := map[string][]snapshot.EnumValue{}
	for name := range want {
		var e *btf.Enum
		if spec.TypeByName(name, &e) != nil {
			continue // an older kernel without it: values stay numbers
		}
		for _, v := range e.Values {
			out[name] = append(out[name], snapshot.EnumValue{Name: v.Name, Value: int64(v.Value)})
		}
	}
	return out, nil
}
