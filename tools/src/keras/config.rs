//! Reading the model architecture from Keras's JSON config (`config.json` in a `.keras`
//! archive, the `model_config` attribute of a legacy `.h5` file).

use super::KerasError;
use serde_json::Value;

/// One layer of the config, as written by Keras.
#[derive(Clone, Debug)]
pub(crate) struct LayerSpec {
    /// Position in the config's layer list (an `InputLayer`, when listed, is 0).
    pub index: usize,
    /// The layer's name (`config.name`).
    pub name: String,
    /// The layer's Keras class (`Conv2D`, `Dense`, …).
    pub class: String,
    /// The layer's `config` object.
    pub config: Value,
    /// Names of the layers whose outputs it reads, in order (for a `Sequential` model, the
    /// layer before it, or the model input).
    pub inbound: Vec<String>,
}

impl LayerSpec {
    /// An [`KerasError::Unsupported`] naming this layer.
    pub fn unsupported(&self, reason: impl Into<String>) -> KerasError {
        KerasError::Unsupported {
            index: self.index,
            name: self.name.clone(),
            class: self.class.clone(),
            reason: reason.into(),
        }
    }

    /// A config field, or an error naming the layer when it is absent.
    pub fn field(&self, key: &str) -> Result<&Value, KerasError> {
        self.config.get(key).ok_or_else(|| {
            KerasError::Config(format!(
                "layer {} '{}' ({}) has no '{key}'",
                self.index, self.name, self.class
            ))
        })
    }

    /// A config field that must be a non-negative integer.
    pub fn usize_field(&self, key: &str) -> Result<usize, KerasError> {
        self.field(key)?
            .as_u64()
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| self.unsupported(format!("'{key}' is not a non-negative integer")))
    }

    /// A config field holding a pair of positive integers (or one integer used for both).
    pub fn pair_field(&self, key: &str) -> Result<(usize, usize), KerasError> {
        let v = self.field(key)?;
        let one = |v: &Value| {
            v.as_u64()
                .and_then(|v| usize::try_from(v).ok())
                .filter(|&v| v > 0)
        };
        let pair = match v {
            Value::Array(a) if a.len() == 2 => one(&a[0]).zip(one(&a[1])),
            Value::Number(_) => one(v).map(|n| (n, n)),
            _ => None,
        };
        pair.ok_or_else(|| {
            self.unsupported(format!("'{key}' is {v}, expected two positive integers"))
        })
    }

    /// A string config field (absent or `null` gives `None`).
    pub fn str_field(&self, key: &str) -> Option<&str> {
        self.config.get(key).and_then(Value::as_str)
    }

    /// A boolean config field, `default` when absent or `null`.
    pub fn bool_field(&self, key: &str, default: bool) -> bool {
        self.config
            .get(key)
            .and_then(Value::as_bool)
            .unwrap_or(default)
    }
}

/// A model's architecture: its layers in execution order.
#[derive(Clone, Debug)]
pub(crate) struct ModelSpec {
    /// The model's name.
    pub name: String,
    /// The input shape without the batch dimension, when the config states it.
    pub input_shape: Option<Vec<usize>>,
    /// The layers in config order, `InputLayer` excluded (a Functional config lists each
    /// layer after the ones it reads).
    pub layers: Vec<LayerSpec>,
    /// The name by which layers refer to the model input.
    pub input_name: String,
    /// The name of the layer whose output is the model's output.
    pub output_name: String,
}

/// How a `Sequential` model without an `InputLayer` names its input (not a valid Keras name).
pub(crate) const SEQUENTIAL_INPUT: &str = "<input>";

/// Parses a Keras model config (Keras 2 or 3, `Sequential`, or a single-input, single-output
/// `Functional` graph).
pub(crate) fn parse_model_config(json: &str) -> Result<ModelSpec, KerasError> {
    let root: Value = serde_json::from_str(json)
        .map_err(|e| KerasError::Config(format!("not valid JSON: {e}")))?;
    let class = root
        .get("class_name")
        .and_then(Value::as_str)
        .ok_or_else(|| KerasError::Config("no top-level 'class_name'".into()))?;
    let config = root
        .get("config")
        .ok_or_else(|| KerasError::Config("no top-level 'config'".into()))?;
    let name = config
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("model")
        .to_string();
    let raw_layers = config
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| KerasError::Config(format!("the {class} config has no 'layers' list")))?;
    let functional = match class {
        "Sequential" => false,
        "Functional" | "Model" => true,
        other => {
            return Err(KerasError::Config(format!(
                "the model is a '{other}'; only Sequential and Functional models are supported"
            )))
        }
    };
    let mut all = Vec::with_capacity(raw_layers.len());
    for (index, layer) in raw_layers.iter().enumerate() {
        let class = layer
            .get("class_name")
            .and_then(Value::as_str)
            .ok_or_else(|| KerasError::Config(format!("layer {index} has no 'class_name'")))?;
        let config = layer.get("config").cloned().ok_or_else(|| {
            KerasError::Config(format!("layer {index} ({class}) has no 'config'"))
        })?;
        // Functional configs keep the name next to the config too; either will do.
        let name = config
            .get("name")
            .or_else(|| layer.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let mut spec = LayerSpec {
            index,
            name,
            class: class.to_string(),
            config,
            inbound: Vec::new(),
        };
        if functional {
            spec.inbound = inbound_layers(&spec, layer.get("inbound_nodes"))?;
        }
        all.push(spec);
    }

    let mut input_shape = None;
    let mut input_name = None;
    let mut layers: Vec<LayerSpec> = Vec::new();
    for mut spec in all {
        if spec.class == "InputLayer" {
            if input_name.is_some() {
                return Err(
                    spec.unsupported("a second input; only single-input models are supported")
                );
            }
            input_shape = Some(batch_shape(&spec.config).ok_or_else(|| {
                spec.unsupported("no 'batch_shape' / 'batch_input_shape' with known sizes")
            })?);
            input_name = Some(spec.name.clone());
            continue;
        }
        if layers.is_empty() && input_shape.is_none() {
            // Keras 2 Sequential models without an InputLayer put it on the first layer.
            input_shape = batch_shape(&spec.config);
        }
        if !functional {
            let previous = layers.last().map(|l| l.name.clone());
            let input = input_name
                .clone()
                .unwrap_or_else(|| SEQUENTIAL_INPUT.to_string());
            spec.inbound = vec![previous.unwrap_or(input)];
        }
        layers.push(spec);
    }
    if input_shape.is_none() {
        input_shape = config
            .get("build_input_shape")
            .or_else(|| root.pointer("/build_config/input_shape"))
            .and_then(shape_without_batch);
    }
    let input_name = input_name.unwrap_or_else(|| SEQUENTIAL_INPUT.to_string());
    let output_name = if functional {
        let outputs = config
            .get("output_layers")
            .map(layer_refs)
            .unwrap_or_default();
        let inputs = config
            .get("input_layers")
            .map(layer_refs)
            .unwrap_or_default();
        if inputs.len() > 1 {
            return Err(KerasError::Config(format!(
                "the model has {} inputs ({inputs:?}); only single-input models are supported",
                inputs.len()
            )));
        }
        match outputs.as_slice() {
            [one] => one.clone(),
            _ => {
                return Err(KerasError::Config(format!(
                    "the model has outputs {outputs:?}; only single-output models are supported"
                )))
            }
        }
    } else {
        layers
            .last()
            .map_or_else(|| input_name.clone(), |l| l.name.clone())
    };
    Ok(ModelSpec {
        name,
        input_shape,
        layers,
        input_name,
        output_name,
    })
}

/// Names in a Functional config's `input_layers` / `output_layers`: `[name, 0, 0]` (one) or a
/// list of them.
fn layer_refs(v: &Value) -> Vec<String> {
    match v.as_array().map(Vec::as_slice) {
        Some([Value::String(name), ..]) => vec![name.clone()],
        Some(items) => items
            .iter()
            .filter_map(|i| i.get(0).and_then(Value::as_str).map(str::to_string))
            .collect(),
        None => Vec::new(),
    }
}

/// The input shape of an `InputLayer`-like config, without the batch dimension.
fn batch_shape(config: &Value) -> Option<Vec<usize>> {
    config
        .get("batch_shape")
        .or_else(|| config.get("batch_input_shape"))
        .and_then(shape_without_batch)
}

/// `[null, 28, 28, 1]` → `[28, 28, 1]`; `None` when a size other than the batch is unknown.
fn shape_without_batch(v: &Value) -> Option<Vec<usize>> {
    let dims = v.as_array()?;
    let (_, rest) = dims.split_first()?;
    rest.iter()
        .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
        .collect()
}

/// Names of the layers a Functional layer reads, in order, in the Keras 3 (`keras_history`)
/// or Keras 2 (`[[[name, node, tensor, kwargs], …]]`) format. A layer called more than once
/// (a shared layer) or reading a later call of another layer is rejected.
fn inbound_layers(spec: &LayerSpec, nodes: Option<&Value>) -> Result<Vec<String>, KerasError> {
    fn collect(v: &Value, out: &mut Vec<(String, u64)>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::Array(history)) = map.get("keras_history") {
                    if let Some(Value::String(name)) = history.first() {
                        let node = history.get(1).and_then(Value::as_u64).unwrap_or(0);
                        out.push((name.clone(), node));
                    }
                    return;
                }
                for value in map.values() {
                    collect(value, out);
                }
            }
            Value::Array(items) => {
                // A Keras 2 node entry: [name, node_index, tensor_index, kwargs].
                if let [Value::String(name), Value::Number(node), Value::Number(_), ..] =
                    items.as_slice()
                {
                    out.push((name.clone(), node.as_u64().unwrap_or(0)));
                    return;
                }
                for item in items {
                    collect(item, out);
                }
            }
            _ => {}
        }
    }
    let nodes = match nodes {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(nodes)) => nodes.as_slice(),
        Some(other) => return Err(spec.unsupported(format!("inbound_nodes {other} is not a list"))),
    };
    if nodes.len() > 1 {
        return Err(spec.unsupported(format!(
            "it is called {} times (shared layers are not supported)",
            nodes.len()
        )));
    }
    let mut out = Vec::new();
    if let Some(node) = nodes.first() {
        collect(node, &mut out);
    }
    out.into_iter()
        .map(|(name, node)| {
            if node == 0 {
                Ok(name)
            } else {
                Err(spec.unsupported(format!(
                    "it reads call {node} of the shared layer '{name}' (shared layers are not supported)"
                )))
            }
        })
        .collect()
}

/// Keras's `to_snake_case` of a class name (`DepthwiseConv2D` → `depthwise_conv2d`), used to
/// find a layer's weights in a `.keras` archive saved without layer-name attributes.
pub(crate) fn snake_case(class: &str) -> String {
    let chars: Vec<char> = class
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    // First pass: "(.)([A-Z][a-z]+)" → "\1_\2".
    let mut first = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if i > 0
            && c.is_ascii_uppercase()
            && chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase())
        {
            first.push('_');
        }
        first.push(c);
    }
    // Second pass: "([a-z])([A-Z])" → "\1_\2".
    let chars: Vec<char> = first.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if i > 0 && c.is_ascii_uppercase() && chars[i - 1].is_ascii_lowercase() {
            out.push('_');
        }
        out.push(c);
    }
    out.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_matches_keras() {
        assert_eq!(snake_case("Conv2D"), "conv2d");
        assert_eq!(snake_case("DepthwiseConv2D"), "depthwise_conv2d");
        assert_eq!(snake_case("MaxPooling2D"), "max_pooling2d");
        assert_eq!(snake_case("AveragePooling2D"), "average_pooling2d");
        assert_eq!(snake_case("Dense"), "dense");
        assert_eq!(snake_case("ReLU"), "re_lu");
    }

    #[test]
    fn functional_inbound_names_and_output_are_read() {
        let chain = r#"{"class_name":"Functional","config":{"name":"f","layers":[
            {"class_name":"InputLayer","name":"in","config":{"name":"in","batch_shape":[null,4]},"inbound_nodes":[]},
            {"class_name":"Dense","name":"d","config":{"name":"d","units":2},
             "inbound_nodes":[{"args":[{"class_name":"__keras_tensor__","config":{"keras_history":["in",0,0]}}],"kwargs":{}}]}
        ],"input_layers":[["in",0,0]],"output_layers":["d",0,0]}}"#;
        let spec = parse_model_config(chain).unwrap();
        assert_eq!(spec.input_shape, Some(vec![4]));
        assert_eq!(spec.layers.len(), 1);
        assert_eq!(spec.layers[0].inbound, vec!["in".to_string()]);
        assert_eq!(
            (spec.input_name.as_str(), spec.output_name.as_str()),
            ("in", "d")
        );
        let shared = chain.replace(r#"["in",0,0]}}]"#, r#"["in",1,0]}}]"#);
        let err = parse_model_config(&shared).unwrap_err().to_string();
        assert!(err.contains("'d'") && err.contains("shared"), "{err}");
    }

    #[test]
    fn keras2_functional_inbound_nodes_are_read() {
        let nodes: Value =
            serde_json::from_str(r#"[[["conv", 0, 0, {}], ["bn", 0, 0, {}]]]"#).unwrap();
        let spec = LayerSpec {
            index: 3,
            name: "add".into(),
            class: "Add".into(),
            config: Value::Null,
            inbound: vec![],
        };
        assert_eq!(
            inbound_layers(&spec, Some(&nodes)).unwrap(),
            vec!["conv".to_string(), "bn".to_string()]
        );
    }
}
