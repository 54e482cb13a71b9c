//! GPU families (`nv_gpu_*`, `nv_energy_consumption`) read through NVML, with Triton's names,
//! help strings and `gpu_uuid` label. NVML is loaded at run time: on a machine without an
//! NVIDIA driver `GpuCollector::new` gives `None` and the families are simply absent.

use nvml_wrapper::Nvml;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{Gauge, LabelPair, Metric, MetricFamily, MetricType};

const FAMILIES: [(&str, &str); 6] = [
    ("nv_gpu_utilization", "GPU utilization rate [0.0 - 1.0)"),
    ("nv_gpu_memory_total_bytes", "GPU total memory, in bytes"),
    ("nv_gpu_memory_used_bytes", "GPU used memory, in bytes"),
    ("nv_gpu_power_usage", "GPU power usage in watts"),
    ("nv_gpu_power_limit", "GPU power management limit in watts"),
    (
        "nv_energy_consumption",
        "GPU energy consumption in joules since the Triton Server started",
    ),
];

pub struct GpuCollector {
    nvml: Nvml,
    /// (uuid, energy in mJ when the server started) per device index.
    devices: Vec<(String, u64)>,
    descs: Vec<Desc>,
}

impl GpuCollector {
    /// `None` when NVML or a GPU is missing.
    pub fn new() -> Option<GpuCollector> {
        let nvml = Nvml::init().ok()?;
        let count = nvml.device_count().ok()?;
        let mut devices = Vec::new();
        for i in 0..count {
            let d = nvml.device_by_index(i).ok()?;
            let uuid = d.uuid().ok()?;
            devices.push((uuid, d.total_energy_consumption().unwrap_or(0)));
        }
        if devices.is_empty() {
            return None;
        }
        let descs = FAMILIES
            .iter()
            .map(|(n, h)| {
                Desc::new(
                    n.to_string(),
                    h.to_string(),
                    vec!["gpu_uuid".into()],
                    Default::default(),
                )
            })
            .collect::<Result<_, _>>()
            .ok()?;
        Some(GpuCollector {
            nvml,
            devices,
            descs,
        })
    }
}

fn gauge(uuid: &str, v: f64) -> Metric {
    let mut l = LabelPair::default();
    l.set_name("gpu_uuid".into());
    l.set_value(uuid.into());
    let mut g = Gauge::default();
    g.set_value(v);
    let mut m = Metric::from_label(vec![l]);
    m.set_gauge(g);
    m
}

impl Collector for GpuCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut values: Vec<Vec<Metric>> = vec![Vec::new(); FAMILIES.len()];
        for (i, (uuid, energy0)) in self.devices.iter().enumerate() {
            let Ok(d) = self.nvml.device_by_index(i as u32) else {
                continue;
            };
            if let Ok(u) = d.utilization_rates() {
                values[0].push(gauge(uuid, f64::from(u.gpu) / 100.0));
            }
            if let Ok(m) = d.memory_info() {
                values[1].push(gauge(uuid, m.total as f64));
                values[2].push(gauge(uuid, m.used as f64));
            }
            if let Ok(p) = d.power_usage() {
                values[3].push(gauge(uuid, f64::from(p) / 1000.0));
            }
            if let Ok(p) = d.enforced_power_limit() {
                values[4].push(gauge(uuid, f64::from(p) / 1000.0));
            }
            if let Ok(e) = d.total_energy_consumption() {
                values[5].push(gauge(uuid, e.saturating_sub(*energy0) as f64 / 1000.0));
            }
        }
        FAMILIES
            .iter()
            .zip(values)
            .filter(|(_, v)| !v.is_empty())
            .map(|((name, help), metrics)| {
                let mut f = MetricFamily::default();
                f.set_name(name.to_string());
                f.set_help(help.to_string());
                f.set_field_type(MetricType::GAUGE);
                f.set_metric(metrics);
                f
            })
            .collect()
    }
}
