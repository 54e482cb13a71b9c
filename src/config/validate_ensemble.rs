//! `ValidateEnsembleSchedulingConfig`: an ensemble's steps must form a data
//! flow from the ensemble's inputs to its outputs. Checks that need the
//! composing models' configs (tensor types and shapes, batch sizes) belong
//! to the repository, which knows those models.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use crate::proto::inference::{ModelConfig, ModelEnsembling};

use super::normalize::names::ENSEMBLE_PLATFORM;
use super::source_map::{field_path, index_path, string_key_path};
use super::validate::Errors;

/// A tensor of the data-flow graph.
struct Tensor {
    name: String,
    /// Where it first appears, for error positions.
    path: String,
    is_output: bool,
    ready: bool,
    prev: Vec<usize>,
    next: Vec<usize>,
}

#[derive(Default)]
struct Graph {
    tensors: Vec<Tensor>,
    index: HashMap<String, usize>,
}

impl Graph {
    fn get_or_add(&mut self, name: &str, path: &str, is_output: bool) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.tensors.len();
        self.tensors.push(Tensor {
            name: name.to_string(),
            path: path.to_string(),
            is_output,
            ready: false,
            prev: Vec::new(),
            next: Vec::new(),
        });
        self.index.insert(name.to_string(), i);
        i
    }
}

pub(crate) fn ensemble(cfg: &ModelConfig, es: &ModelEnsembling, out: &mut Errors) {
    let name = &cfg.name;
    if cfg.platform != ENSEMBLE_PLATFORM {
        out.push(
            "ensemble_scheduling",
            format!("ensemble scheduling cannot be set for model '{name}' whose platform is not {ENSEMBLE_PLATFORM}"),
        );
    }
    if !cfg.instance_group.is_empty() {
        out.push(
            "instance_group",
            format!("instance group should not be specified for ensemble '{name}'"),
        );
    }
    if cfg.optimization.is_some() {
        out.push(
            "optimization",
            format!("optimization should not be specified for ensemble '{name}'"),
        );
    }
    if !cfg.model_warmup.is_empty() {
        out.push(
            "model_warmup",
            format!("model_warmup can not be specified for ensemble '{name}'"),
        );
    }
    if es.step.is_empty() {
        out.push(
            "ensemble_scheduling.step",
            format!("must specify 'step' for ensemble '{name}'"),
        );
        return;
    }
    let Some(mut graph) = build_graph(cfg, es, out) else {
        return;
    };
    data_flow(cfg, &mut graph, out);
}

/// `BuildEnsembleGraph`: tensors linked from each step's inputs to its
/// outputs. `None` after an error, as Triton stops there.
fn build_graph(cfg: &ModelConfig, es: &ModelEnsembling, out: &mut Errors) -> Option<Graph> {
    let name = &cfg.name;
    let mut g = Graph::default();
    for (i, step) in es.step.iter().enumerate() {
        let path = index_path("ensemble_scheduling.step", i);
        let missing = if step.model_name.is_empty() {
            Some("model_name")
        } else if step.input_map.is_empty() {
            Some("input_map")
        } else if step.output_map.is_empty() {
            Some("output_map")
        } else {
            None
        };
        if let Some(field) = missing {
            out.push(
                field_path(&path, field),
                format!("must specify '{field}' in step {i} of ensemble '{name}'"),
            );
            return None;
        }
        let outputs: BTreeMap<&String, &String> = step.output_map.iter().collect();
        let inputs: BTreeMap<&String, &String> = step.input_map.iter().collect();
        let mut as_output = Vec::new();
        for (key, tensor) in outputs {
            let tpath = string_key_path(&field_path(&path, "output_map"), key);
            if let Some(&t) = g.index.get(tensor.as_str()) {
                if g.tensors[t].is_output {
                    out.push(
                        tpath,
                        format!("ensemble tensor '{tensor}' can appear in an output map only once for ensemble '{name}' step {i}"),
                    );
                    return None;
                }
                g.tensors[t].is_output = true;
                as_output.push(t);
            } else {
                as_output.push(g.get_or_add(tensor, &tpath, true));
            }
        }
        for (key, tensor) in inputs {
            let tpath = string_key_path(&field_path(&path, "input_map"), key);
            let t = g.get_or_add(tensor, &tpath, false);
            for &o in &as_output {
                g.tensors[o].prev.push(t);
                g.tensors[t].next.push(o);
            }
        }
    }
    Some(g)
}

/// Every ensemble input feeds the graph, every output is written from the
/// inputs, and every tensor is used.
fn data_flow(cfg: &ModelConfig, g: &mut Graph, out: &mut Errors) {
    let name = &cfg.name;
    let mut queue = VecDeque::new();
    for (i, input) in cfg.input.iter().enumerate() {
        let Some(&t) = g.index.get(&input.name) else {
            // Triton's message has this unbalanced quote.
            out.push(
                field_path(&index_path("input", i), "name"),
                format!(
                    "ensemble input '{}' for ensemble {name}' is not used",
                    input.name
                ),
            );
            return;
        };
        g.tensors[t].ready = true;
        queue.push_back(t);
    }
    while let Some(t) = queue.pop_front() {
        for n in g.tensors[t].next.clone() {
            if g.tensors[n].ready {
                continue;
            }
            let ready = g.tensors[n].prev.iter().all(|&p| g.tensors[p].ready);
            g.tensors[n].ready = ready;
            if ready {
                queue.push_back(n);
            }
        }
    }
    let mut outputs = HashSet::new();
    for (i, output) in cfg.output.iter().enumerate() {
        let path = field_path(&index_path("output", i), "name");
        let Some(&t) = g.index.get(&output.name) else {
            out.push(
                path,
                format!(
                    "ensemble output '{}' for ensemble {name}' is not used",
                    output.name
                ),
            );
            return;
        };
        if !g.tensors[t].ready {
            let mut msg = format!(
                "output '{}' for ensemble '{name}' is not written",
                output.name
            );
            if let Some(source) = not_ready_source(g, t) {
                msg.push_str(&format!(
                    ": at least one of its depending tensors, '{source}', is not connected"
                ));
            }
            out.push(path, msg);
            return;
        }
        outputs.insert(t);
    }
    let mut unused: Vec<&Tensor> = g
        .tensors
        .iter()
        .enumerate()
        .filter(|(i, t)| !outputs.contains(i) && (!t.ready || t.next.is_empty()))
        .map(|(_, t)| t)
        .collect();
    unused.sort_by(|a, b| a.name.cmp(&b.name));
    for t in unused {
        out.push(
            t.path.clone(),
            format!(
                "ensemble tensor '{}' is unused in ensemble '{name}'",
                t.name
            ),
        );
    }
}

/// Follows not-ready predecessors back to the last one (cycles stop it).
fn not_ready_source(g: &Graph, start: usize) -> Option<&str> {
    let mut seen = HashSet::new();
    let mut last = start;
    let mut current = start;
    while let Some(&p) = g.tensors[current]
        .prev
        .iter()
        .find(|&&p| !g.tensors[p].ready && !seen.contains(&p))
    {
        seen.insert(p);
        last = p;
        current = p;
    }
    (last != start).then(|| g.tensors[last].name.as_str())
}
