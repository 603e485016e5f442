import time

import pytest

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.measure.power.estimate import EstimateMeter, cpu_seconds
from edgebranchy.device.profile_loading import load_profile


def burn_cpu(cpu_s):
    """Spin until this process has used `cpu_s` more CPU seconds (robust on a loaded machine)."""
    start = cpu_seconds("process")
    x = 0
    while cpu_seconds("process") - start < cpu_s:
        for _ in range(10_000):
            x += 1
    return x


def window(meter, work):
    meter.start()
    work()
    return meter.stop()


@pytest.mark.parametrize("model", ["utilization", "cpu_time"])
def test_estimate_grows_with_cpu_work(model):
    coeffs = dict(p_max_w=10.0) if model == "utilization" else dict(p_active_core_w=6.0, p_idle_core_w=1.0)
    meter = EstimateMeter(2.0, model=model, cores=2, **coeffs)
    work = window(meter, lambda: burn_cpu(0.2))
    idle = window(meter, lambda: time.sleep(min(work.seconds, 1.0)))
    assert idle.kind == work.kind == "estimated" and idle.source == "estimate"
    # the part above P_idle*t: 0.2 busy CPU-seconds give (10-2)*0.2/2 = 0.8 J or (6-1)*0.2 = 1.0 J
    dynamic_work = work.joules - 2.0 * work.seconds
    dynamic_idle = idle.joules - 2.0 * idle.seconds
    assert dynamic_work >= 0.75 * (0.8 if model == "utilization" else 1.0)
    assert dynamic_idle < 0.2


def test_system_scope_counts_busy_time_only(monkeypatch):
    import collections

    import psutil

    T = collections.namedtuple("scputimes", "user nice system idle iowait irq softirq steal guest guest_nice")
    samples = iter([T(100, 1, 20, 500, 5, 0, 2, 30, 7, 0), T(103, 1, 21, 510, 6, 0, 2, 40, 9, 0)])
    monkeypatch.setattr(psutil, "cpu_times", lambda: next(samples))
    meter = EstimateMeter(2.0, model="cpu_time", p_active_core_w=6.0, p_idle_core_w=1.0, scope="system")
    r = window(meter, lambda: None)
    # busy = user + system (+nice, irq, softirq) grew by 4 s; idle, iowait, steal, guest ignored
    assert r.joules == pytest.approx(2.0 * r.seconds + 5.0 * 4)


def test_energy_formulas():
    u = EstimateMeter(4.40, p_max_w=7.86, cores=4)
    assert u.energy(2.0, 0.0) == pytest.approx(8.8)
    assert u.energy(2.0, 8.0) == pytest.approx(7.86 * 2)  # all four cores busy: u = 1
    assert u.energy(2.0, 4.0) == pytest.approx((4.40 + 3.46 * 0.5) * 2)
    c = EstimateMeter(10.0, model="cpu_time", p_active_core_w=9.0, p_idle_core_w=1.0)
    assert c.energy(2.0, 3.0) == pytest.approx(10 * 2 + 8 * 3)


def test_cpu_seconds_scopes():
    assert cpu_seconds("process") > 0 and cpu_seconds("system") > 0
    with pytest.raises(EdgeBranchyError):
        cpu_seconds("thread")


def test_from_profile_uses_rpi5_regression():
    m = EstimateMeter.from_profile(load_profile("raspberry-pi-5"))
    assert (m.p_idle_w, m.dynamic_w) == (pytest.approx(4.40), pytest.approx(3.46))
    assert "raspberry-pi-5" in m.summary() and "3.46" in m.summary()


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(p_idle_w=1.0),  # utilization without p_max_w
        dict(p_idle_w=1.0, model="cpu_time", p_active_core_w=2.0),
        dict(p_idle_w=5.0, p_max_w=4.0),
        dict(p_idle_w=-1.0, p_max_w=4.0),
        dict(p_idle_w=1.0, p_max_w=4.0, scope="galaxy"),
        dict(p_idle_w=1.0, p_max_w=4.0, model="magic"),
    ],
)
def test_bad_coefficients(kwargs):
    with pytest.raises(EdgeBranchyError):
        EstimateMeter(**kwargs)
    ok, why = EstimateMeter.available(**kwargs)
    assert not ok and why
