"""The machine record of a benchmark run names the CPU generation, not only its marketing name."""

from benchmarks.harness import machine, report

ZEN2 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 23
model\t\t: 49
model name\t: AMD EPYC
flags\t\t: fpu sse avx2 fma

processor\t: 1
cpu family\t: 25
model\t\t: 17
flags\t\t: fpu avx2 avx512f
"""


def test_cpu_identity_reads_the_first_processor():
    assert machine.cpu_identity(ZEN2) == "family 23 model 49, no AVX-512"
    zen4 = ZEN2.split("\n\n")[1].replace("processor\t: 1", "processor\t: 0")
    assert machine.cpu_identity(zen4) == "family 25 model 17, AVX-512"
    assert machine.cpu_identity("model name\t: some ARM board\n") is None  # no family/model: unknown


def test_the_report_names_the_identity_when_recorded():
    assert report._identity({"cpu_identity": "family 23 model 49, no AVX-512"}) == " (family 23 model 49, no AVX-512)"
    assert report._identity({"cpu": "AMD EPYC"}) == ""  # runs recorded before the field existed
