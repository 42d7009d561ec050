package result

import "testing"

func TestParse(t *testing.T) {
	in := StepPrefix + "list\r\n" + StepPrefix + "record-start\r\n" + Begin + "\r\n" +
		`{"kernel":"6.1.0-57-cloud-amd64","events":[{"name":"sys_enter","supported":true},{"name":"cpu_frequency","supported":false,"reason":"no cpufreq"}],` +
		`"getppid_expected":3,"getppid_sys_enter":3,"getppid_sys_exit":2,"steps":[{"name":"list","seconds":1.5},{"name":"view","seconds":0,"error":"boom"}]}` +
		"\r\n" + End + "\r\n"
	out, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	r := out.Result
	if r == nil {
		t.Fatal("no result")
	}
	if out.LastStep != StepStart || r.Kernel != "6.1.0-57-cloud-amd64" || r.Supported() != 1 || r.GetppidExit != 2 {
		t.Errorf("got last step %q, result %+v", out.LastStep, r)
	}
	if len(r.Steps) != 2 || r.Steps[1].Error != "boom" {
		t.Errorf("steps %+v, want view failed with boom", r.Steps)
	}
}

func TestParseUnfinished(t *testing.T) {
	out, err := Parse([]byte(StepPrefix + "list\n" + StepPrefix + "record-start\n" + Begin + "\n{\"kern"))
	if err != nil {
		t.Fatal(err)
	}
	if out.Result != nil || out.LastStep != StepStart {
		t.Errorf("got %+v, want no result and last step %s", out, StepStart)
	}
}

func TestParseBadResult(t *testing.T) {
	if _, err := Parse([]byte(Begin + "\n{not json\n" + End + "\n")); err == nil {
		t.Error("a result that does not decode: want an error")
	}
}
