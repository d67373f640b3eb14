//! Named parameters: the bridge between burn modules (parameters known by [`ParamId`])
//! and PyTorch state dicts (tensors known by key).
//!
//! A model built through a [`crate::weights::Loader`] records, for every parameter it
//! created, the checkpoint key, shape and layout ([`ParamRecord`]). [`NamedParams`] uses
//! those records to read gradients and values under the original keys, to write new
//! values back into the module, and to export a state dict in PyTorch's layout.

use std::collections::{BTreeMap, HashMap};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{Gradients, Tensor, TensorData};

use crate::error::{Result, VtonError};
use crate::weights::{ParamKind, ParamLayout, ParamRecord};

/// A flat host copy of one tensor in PyTorch's layout.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl HostTensor {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        HostTensor { shape, data }
    }

    pub fn numel(&self) -> usize {
        self.data.len()
    }
}

/// The parameters of one model under their checkpoint keys.
#[derive(Debug, Clone, Default)]
pub struct NamedParams {
    records: Vec<ParamRecord>,
    by_id: HashMap<ParamId, usize>,
}

struct Collect<'a> {
    want: &'a HashMap<ParamId, usize>,
    grads: Option<&'a Gradients>,
    out: HashMap<ParamId, Tensor<1>>,
}

impl ModuleVisitor for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if !self.want.contains_key(&param.id) {
            return;
        }
        let t = param.val();
        let value = match self.grads {
            Some(g) => t.grad(g),
            None => Some(t.detach().inner()),
        };
        if let Some(v) = value {
            let n = v.shape().num_elements();
            self.out.insert(param.id, v.reshape([n]));
        }
    }
}

struct Replace<'a> {
    values: &'a HashMap<ParamId, Tensor<1>>,
    require_grad: &'a HashMap<ParamId, bool>,
}

impl ModuleMapper for Replace<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(v) = self.values.get(&param.id) else {
            return param;
        };
        let id = param.id;
        let old = param.val();
        let dims = old.dims();
        let device = old.device();
        let rg = self.require_grad.get(&id).copied().unwrap_or(false);
        let mut t: Tensor<D> = v.clone().reshape(dims);
        if device.is_autodiff() {
            t = t.autodiff();
        }
        let t = if rg { t.require_grad() } else { t };
        Param::initialized(id, t)
    }
}

impl NamedParams {
    /// From the records of the loader that built the model.
    pub fn new(records: Vec<ParamRecord>) -> Result<Self> {
        let mut by_id = HashMap::new();
        let mut seen = BTreeMap::new();
        for (i, r) in records.iter().enumerate() {
            if let Some(prev) = seen.insert(r.key.clone(), i) {
                let _ = prev;
                return Err(VtonError::config(
                    r.key.clone(),
                    "two parameters were loaded from the same checkpoint key",
                ));
            }
            by_id.insert(r.id, i);
        }
        Ok(NamedParams { records, by_id })
    }

    /// Every record, in load order.
    pub fn records(&self) -> &[ParamRecord] {
        &self.records
    }

    /// The trainable keys, in load order (PyTorch's `model.parameters()` order when the
    /// loader follows the module's construction order).
    pub fn trainable_keys(&self) -> Vec<String> {
        self.records
            .iter()
            .filter(|r| r.kind == ParamKind::Trainable)
            .map(|r| r.key.clone())
            .collect()
    }

    pub fn record(&self, key: &str) -> Option<&ParamRecord> {
        self.records.iter().find(|r| r.key == key)
    }

    /// The key of a parameter slot.
    pub fn key_of(&self, id: &ParamId) -> Option<&str> {
        self.by_id.get(id).map(|&i| self.records[i].key.as_str())
    }

    /// Values of every recorded tensor, flat in burn's layout, without autodiff.
    pub fn values<M: Module>(&self, module: &M) -> BTreeMap<String, Tensor<1>> {
        self.collect(module, None)
    }

    /// Gradients of the trainable parameters after `backward`, flat in burn's layout.
    /// A parameter the loss does not reach is absent (PyTorch's `grad is None`).
    pub fn grads<M: Module>(&self, module: &M, grads: &Gradients) -> BTreeMap<String, Tensor<1>> {
        let mut out = self.collect(module, Some(grads));
        out.retain(|k, _| {
            self.record(k)
                .is_some_and(|r| r.kind == ParamKind::Trainable)
        });
        out
    }

    fn collect<M: Module>(
        &self,
        module: &M,
        grads: Option<&Gradients>,
    ) -> BTreeMap<String, Tensor<1>> {
        let mut c = Collect {
            want: &self.by_id,
            grads,
            out: HashMap::new(),
        };
        module.visit(&mut c);
        c.out
            .into_iter()
            .filter_map(|(id, t)| self.key_of(&id).map(|k| (k.to_string(), t)))
            .collect()
    }

    /// Writes new values (flat, burn layout, any device) into the module's slots by key;
    /// trainable parameters keep requiring gradients.
    pub fn set<M: Module>(&self, module: M, values: &BTreeMap<String, Tensor<1>>) -> Result<M> {
        let mut by_id = HashMap::new();
        let mut rg = HashMap::new();
        for (k, v) in values {
            let r = self.record(k).ok_or_else(|| {
                VtonError::config(k.clone(), "no parameter of the model has this key")
            })?;
            let n: usize = r.shape.iter().product();
            if v.shape().num_elements() != n {
                return Err(VtonError::WeightShape {
                    key: k.clone(),
                    expected: r.shape.clone(),
                    found: v.dims().to_vec(),
                });
            }
            by_id.insert(r.id, v.clone());
            rg.insert(r.id, r.kind == ParamKind::Trainable);
        }
        Ok(module.map(&mut Replace {
            values: &by_id,
            require_grad: &rg,
        }))
    }

    /// Writes buffer updates from a train-mode forward ([`crate::nn::train_mode`]) into
    /// the module; returns the keys of the layers whose `num_batches_tracked` advanced.
    pub fn apply_buffer_updates<M: Module>(
        &self,
        module: M,
        updates: Vec<crate::nn::BufferUpdate>,
    ) -> (M, Vec<String>) {
        let mut by_id = HashMap::new();
        let mut counted = Vec::new();
        for u in updates {
            if let Some(c) = u.counter_of {
                if let Some(k) = self.key_of(&c) {
                    counted.push(k.to_string());
                }
            }
            by_id.insert(u.id, u.value);
        }
        let rg = HashMap::new();
        let m = module.map(&mut Replace {
            values: &by_id,
            require_grad: &rg,
        });
        (m, counted)
    }

    /// A flat burn-layout tensor of `key` to PyTorch's layout on the host.
    pub fn to_host(&self, key: &str, t: &Tensor<1>) -> Result<HostTensor> {
        let r = self
            .record(key)
            .ok_or_else(|| VtonError::config(key.to_string(), "not a parameter of the model"))?;
        let data: Vec<f32> = tensor_to_vec(t)?;
        Ok(HostTensor::new(r.shape.clone(), to_torch_layout(r, data)))
    }

    /// A PyTorch-layout host tensor to the flat burn layout of `key`.
    pub fn from_host(
        &self,
        key: &str,
        h: &HostTensor,
        device: &burn::tensor::Device,
    ) -> Result<Tensor<1>> {
        let r = self
            .record(key)
            .ok_or_else(|| VtonError::config(key.to_string(), "not a parameter of the model"))?;
        if h.shape != r.shape {
            return Err(VtonError::WeightShape {
                key: key.to_string(),
                expected: r.shape.clone(),
                found: h.shape.clone(),
            });
        }
        let data = from_torch_layout(r, h.data.clone());
        let n = data.len();
        Ok(Tensor::from_data(TensorData::new(data, [n]), device))
    }

    /// The module's recorded tensors in PyTorch's layout, under the original keys.
    pub fn state_dict<M: Module>(&self, module: &M) -> Result<BTreeMap<String, HostTensor>> {
        let mut out = BTreeMap::new();
        for (k, t) in self.values(module) {
            let h = self.to_host(&k, &t)?;
            out.insert(k, h);
        }
        Ok(out)
    }
}

/// Reads a tensor's values as f32.
pub fn tensor_to_vec<const D: usize>(t: &Tensor<D>) -> Result<Vec<f32>> {
    t.clone()
        .inner()
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| VtonError::Numerical {
            operation: "reading a tensor".into(),
            message: format!("{e:?}"),
        })
}

fn to_torch_layout(r: &ParamRecord, data: Vec<f32>) -> Vec<f32> {
    match r.layout {
        ParamLayout::Same => data,
        ParamLayout::Transposed => {
            // burn [din, dout] -> torch [dout, din]
            let (dout, din) = (r.shape[0], r.shape[1]);
            let mut t = vec![0f32; data.len()];
            for j in 0..din {
                for i in 0..dout {
                    t[i * din + j] = data[j * dout + i];
                }
            }
            t
        }
    }
}

fn from_torch_layout(r: &ParamRecord, data: Vec<f32>) -> Vec<f32> {
    match r.layout {
        ParamLayout::Same => data,
        ParamLayout::Transposed => {
            let (dout, din) = (r.shape[0], r.shape[1]);
            let mut t = vec![0f32; data.len()];
            for i in 0..dout {
                for j in 0..din {
                    t[j * dout + i] = data[i * din + j];
                }
            }
            t
        }
    }
}
