import pathlib
import time

import pytest

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.measure.power.rapl import RaplMeter, find_packages

PC = "sys/class/powercap"
MAX = 262143328850


def rapl_tree(tree, root, pkg0=1_000_000, pkg1=5_000_000, core=7_000_000):
    return tree(root, {
        f"{PC}/intel-rapl:0/name": "package-0\n", f"{PC}/intel-rapl:0/energy_uj": f"{pkg0}\n",
        f"{PC}/intel-rapl:0/max_energy_range_uj": f"{MAX}\n",
        f"{PC}/intel-rapl:0:0/name": "core\n", f"{PC}/intel-rapl:0:0/energy_uj": f"{core}\n",
        f"{PC}/intel-rapl:0:0/max_energy_range_uj": f"{MAX}\n",
        f"{PC}/intel-rapl:0/intel-rapl:0:0/name": "core\n",
        f"{PC}/intel-rapl:1/name": "package-1\n", f"{PC}/intel-rapl:1/energy_uj": f"{pkg1}\n",
        f"{PC}/intel-rapl:1/max_energy_range_uj": f"{MAX}\n",
        f"{PC}/intel-rapl:2/name": "psys\n", f"{PC}/intel-rapl:2/energy_uj": "1\n",
        f"{PC}/intel-rapl:2/max_energy_range_uj": f"{MAX}\n",
        f"{PC}/intel-rapl-mmio:0/name": "package-0\n", f"{PC}/intel-rapl-mmio:0/energy_uj": "1\n",
    })


def set_counter(root, domain, value):
    (root / PC / domain / "energy_uj").write_text(f"{value}\n")


def test_only_package_domains(tree, tmp_path):
    rapl_tree(tree, tmp_path)
    assert [d.name for d in find_packages(tmp_path)] == ["package-0", "package-1"]


def test_sums_packages_never_nested_domains(tree, tmp_path):
    rapl_tree(tree, tmp_path)
    meter = RaplMeter(root=tmp_path)
    meter.start()
    set_counter(tmp_path, "intel-rapl:0", 1_000_000 + 2_000_000)
    set_counter(tmp_path, "intel-rapl:1", 5_000_000 + 1_000_000)
    set_counter(tmp_path, "intel-rapl:0:0", 7_000_000 + 50_000_000)  # core: inside package 0
    set_counter(tmp_path, "intel-rapl:2", 99_000_000)  # psys
    time.sleep(0.05)
    r = meter.stop()
    assert (r.source, r.kind, r.samples) == ("rapl", "measured", 2)
    assert r.joules == pytest.approx(3.0)
    assert r.watts == pytest.approx(3.0 / r.seconds)


def test_wraparound(tree, tmp_path):
    rapl_tree(tree, tmp_path, pkg0=MAX - 1000, pkg1=10)
    meter = RaplMeter(root=tmp_path)
    meter.start()
    set_counter(tmp_path, "intel-rapl:0", 500)
    set_counter(tmp_path, "intel-rapl:1", 20)
    r = meter.stop()
    assert r.joules == pytest.approx((1500 + 10) / 1e6)


def test_permission_denied_gives_a_clear_reason(tree, tmp_path, monkeypatch):
    rapl_tree(tree, tmp_path)
    real = pathlib.Path.read_text

    def guarded(self, *a, **k):
        if self.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *a, **k)

    monkeypatch.setattr(pathlib.Path, "read_text", guarded)
    ok, why = RaplMeter.available(root=tmp_path)
    assert not ok and "permission denied" in why and "root" in why
    with pytest.raises(EdgeBranchyError, match="root"):
        RaplMeter(root=tmp_path).start()


def test_no_powercap(tmp_path):
    ok, why = RaplMeter.available(root=tmp_path)
    assert not ok and "no RAPL package domains" in why
