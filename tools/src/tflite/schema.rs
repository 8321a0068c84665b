//! Accessors for the subset of TFLite's flatbuffer schema (`tensorflow/lite/schema/schema.fbs`)
//! the importer reads, on top of the `flatbuffers` crate's `Table`.
//!
//! Every table type here implements `Verifiable` for exactly the fields it exposes, and the
//! root is only ever obtained through `flatbuffers::root`, which runs those verifiers over the
//! whole reachable tree first. That is what makes the `unsafe` field reads below sound: each
//! one reads a field whose offset, type and bounds the verifier has checked. Fields nobody
//! reads are neither verified nor touched.

use flatbuffers::{
    Follow, ForwardsUOffset, InvalidFlatbuffer, Table, TableVerifier, Vector, Verifiable, Verifier,
};

/// Byte offset of field `id` in a table's vtable.
const fn slot(id: u16) -> u16 {
    4 + 2 * id
}

/// Declares a table wrapper: the struct, `Follow` and `Verifiable`.
macro_rules! table {
    ($name:ident, |$tv:ident| $verify:expr) => {
        #[derive(Clone, Copy, Debug)]
        pub struct $name<'a> {
            tab: Table<'a>,
        }

        impl<'a> Follow<'a> for $name<'a> {
            type Inner = $name<'a>;
            unsafe fn follow(buf: &'a [u8], loc: usize) -> Self::Inner {
                // SAFETY: forwarded from the caller, who found a table at `loc`.
                $name {
                    tab: unsafe { Table::new(buf, loc) },
                }
            }
        }

        impl Verifiable for $name<'_> {
            fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
                let $tv = v.visit_table(pos)?;
                let tv: TableVerifier = $verify;
                tv.finish();
                Ok(())
            }
        }
    };
}

/// Reads a verified scalar field with its schema default.
macro_rules! scalar {
    ($fn:ident, $id:expr, $t:ty, $default:expr) => {
        pub fn $fn(&self) -> $t {
            // SAFETY: verified as a `$t` by this table's verifier.
            unsafe { self.tab.get::<$t>(slot($id), Some($default)) }.unwrap_or($default)
        }
    };
}

/// Reads a verified optional vector, string or table field.
macro_rules! field {
    ($fn:ident, $id:expr, $t:ty) => {
        pub fn $fn(&self) -> Option<$t> {
            // SAFETY: verified as this type by this table's verifier.
            unsafe { self.tab.get::<ForwardsUOffset<$t>>(slot($id), None) }
        }
    };
}

type Tables<'a, T> = Vector<'a, ForwardsUOffset<T>>;

// table Model { version:uint; operator_codes:[OperatorCode]; subgraphs:[SubGraph];
//               description:string; buffers:[Buffer]; ... }
table!(Model, |tv| tv
    .visit_field::<u32>("version", slot(0), false)?
    .visit_field::<ForwardsUOffset<Tables<OperatorCode>>>("operator_codes", slot(1), false)?
    .visit_field::<ForwardsUOffset<Tables<SubGraph>>>("subgraphs", slot(2), false)?
    .visit_field::<ForwardsUOffset<&str>>("description", slot(3), false)?
    .visit_field::<ForwardsUOffset<Tables<Buffer>>>(
        "buffers",
        slot(4),
        false
    )?);

impl<'a> Model<'a> {
    scalar!(version, 0, u32, 0);
    field!(operator_codes, 1, Tables<'a, OperatorCode<'a>>);
    field!(subgraphs, 2, Tables<'a, SubGraph<'a>>);
    field!(description, 3, &'a str);
    field!(buffers, 4, Tables<'a, Buffer<'a>>);
}

// table OperatorCode { deprecated_builtin_code:byte; custom_code:string; version:int = 1;
//                      builtin_code:BuiltinOperator (int32); }
table!(OperatorCode, |tv| tv
    .visit_field::<i8>("deprecated_builtin_code", slot(0), false)?
    .visit_field::<ForwardsUOffset<&str>>("custom_code", slot(1), false)?
    .visit_field::<i32>("version", slot(2), false)?
    .visit_field::<i32>("builtin_code", slot(3), false)?);

impl<'a> OperatorCode<'a> {
    scalar!(deprecated_builtin_code, 0, i8, 0);
    field!(custom_code, 1, &'a str);
    scalar!(version, 2, i32, 1);
    scalar!(builtin_code, 3, i32, 0);

    /// The operator, reconciling the two code fields as TFLite's `GetBuiltinCode` does: old
    /// files only set the byte field, new ones set both (the byte saturating at 127, the
    /// placeholder for codes that do not fit), so the larger one is the real code.
    pub fn code(&self) -> i32 {
        i32::from(self.deprecated_builtin_code()).max(self.builtin_code())
    }
}

// table SubGraph { tensors:[Tensor]; inputs:[int]; outputs:[int]; operators:[Operator];
//                  name:string; }
table!(SubGraph, |tv| tv
    .visit_field::<ForwardsUOffset<Tables<TensorDef>>>("tensors", slot(0), false)?
    .visit_field::<ForwardsUOffset<Vector<i32>>>("inputs", slot(1), false)?
    .visit_field::<ForwardsUOffset<Vector<i32>>>("outputs", slot(2), false)?
    .visit_field::<ForwardsUOffset<Tables<Operator>>>(
        "operators",
        slot(3),
        false
    )?);

impl<'a> SubGraph<'a> {
    field!(tensors, 0, Tables<'a, TensorDef<'a>>);
    field!(inputs, 1, Vector<'a, i32>);
    field!(outputs, 2, Vector<'a, i32>);
    field!(operators, 3, Tables<'a, Operator<'a>>);
}

// table Buffer { data:[ubyte]; offset:ulong; size:ulong; }
table!(Buffer, |tv| tv
    .visit_field::<ForwardsUOffset<Vector<u8>>>("data", slot(0), false)?
    .visit_field::<u64>("offset", slot(1), false)?
    .visit_field::<u64>("size", slot(2), false)?);

impl<'a> Buffer<'a> {
    field!(data, 0, Vector<'a, u8>);
    scalar!(offset, 1, u64, 0);
    scalar!(size, 2, u64, 0);
}

// table Tensor { shape:[int]; type:TensorType (byte); buffer:uint; name:string;
//                quantization:QuantizationParameters; is_variable:bool; sparsity;
//                shape_signature:[int] (id 7); ... }
table!(TensorDef, |tv| tv
    .visit_field::<ForwardsUOffset<Vector<i32>>>("shape", slot(0), false)?
    .visit_field::<i8>("type", slot(1), false)?
    .visit_field::<u32>("buffer", slot(2), false)?
    .visit_field::<ForwardsUOffset<&str>>("name", slot(3), false)?
    .visit_field::<ForwardsUOffset<Quantization>>("quantization", slot(4), false)?
    .visit_field::<ForwardsUOffset<Vector<i32>>>(
        "shape_signature",
        slot(7),
        false
    )?);

impl<'a> TensorDef<'a> {
    field!(shape, 0, Vector<'a, i32>);
    scalar!(dtype, 1, i8, 0);
    scalar!(buffer, 2, u32, 0);
    field!(name, 3, &'a str);
    field!(quantization, 4, Quantization<'a>);
    field!(shape_signature, 7, Vector<'a, i32>);
}

// table QuantizationParameters { min:[float]; max:[float]; scale:[float]; zero_point:[long];
//   details:QuantizationDetails (union: ids 4, 5); quantized_dimension:int; }
table!(Quantization, |tv| tv
    .visit_field::<ForwardsUOffset<Vector<f32>>>("scale", slot(2), false)?
    .visit_field::<ForwardsUOffset<Vector<i64>>>("zero_point", slot(3), false)?
    .visit_field::<u8>("details_type", slot(4), false)?
    .visit_field::<i32>("quantized_dimension", slot(6), false)?);

impl<'a> Quantization<'a> {
    field!(scale, 2, Vector<'a, f32>);
    field!(zero_point, 3, Vector<'a, i64>);
    scalar!(details_type, 4, u8, 0);
    scalar!(quantized_dimension, 6, i32, 0);
}

// table Operator { opcode_index:uint; inputs:[int]; outputs:[int];
//   builtin_options:BuiltinOptions (union: type id 3, value id 4); ... }
table!(Operator, |tv| tv
    .visit_field::<u32>("opcode_index", slot(0), false)?
    .visit_field::<ForwardsUOffset<Vector<i32>>>("inputs", slot(1), false)?
    .visit_field::<ForwardsUOffset<Vector<i32>>>("outputs", slot(2), false)?
    .visit_union::<u8, _>(
        "builtin_options_type",
        slot(3),
        "builtin_options",
        slot(4),
        false,
        verify_options,
    )?);

impl<'a> Operator<'a> {
    scalar!(opcode_index, 0, u32, 0);
    field!(inputs, 1, Vector<'a, i32>);
    field!(outputs, 2, Vector<'a, i32>);
    scalar!(options_type, 3, u8, 0);

    /// The builtin options as table type `T`, if the union holds `T`'s variant.
    pub fn options<T: OptionsTable<'a>>(&self) -> Option<T> {
        if self.options_type() != T::UNION_TYPE {
            return None;
        }
        // SAFETY: the verifier checked the union value as the table its type tag names,
        // which is T (checked just above).
        unsafe { self.tab.get::<ForwardsUOffset<T>>(slot(4), None) }
    }
}

/// A builtin options table and its `BuiltinOptions` union tag.
pub trait OptionsTable<'a>: Follow<'a, Inner = Self> + Verifiable + 'a {
    /// Position of the table in the `BuiltinOptions` union (NONE = 0).
    const UNION_TYPE: u8;
}

/// Verifies the union value of the options types this importer reads; other variants are
/// never read, so they are left alone.
fn verify_options(tag: u8, v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
    fn table<T: Verifiable>(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.verify_union_variant::<ForwardsUOffset<T>>("builtin_options", pos)
    }
    match tag {
        Conv2DOptions::UNION_TYPE => table::<Conv2DOptions>(v, pos),
        DepthwiseConv2DOptions::UNION_TYPE => table::<DepthwiseConv2DOptions>(v, pos),
        Pool2DOptions::UNION_TYPE => table::<Pool2DOptions>(v, pos),
        FullyConnectedOptions::UNION_TYPE => table::<FullyConnectedOptions>(v, pos),
        SoftmaxOptions::UNION_TYPE => table::<SoftmaxOptions>(v, pos),
        AddOptions::UNION_TYPE => table::<AddOptions>(v, pos),
        MulOptions::UNION_TYPE => table::<MulOptions>(v, pos),
        LeakyReluOptions::UNION_TYPE => table::<LeakyReluOptions>(v, pos),
        ReshapeOptions::UNION_TYPE => table::<ReshapeOptions>(v, pos),
        StridedSliceOptions::UNION_TYPE => table::<StridedSliceOptions>(v, pos),
        PackOptions::UNION_TYPE => table::<PackOptions>(v, pos),
        _ => Ok(()),
    }
}

macro_rules! options {
    ($name:ident, $tag:expr) => {
        impl<'a> OptionsTable<'a> for $name<'a> {
            const UNION_TYPE: u8 = $tag;
        }
    };
}

// table Conv2DOptions { padding:Padding (byte: SAME=0, VALID=1); stride_w:int; stride_h:int;
//   fused_activation_function:byte; dilation_w_factor:int = 1; dilation_h_factor:int = 1; }
table!(Conv2DOptions, |tv| tv
    .visit_field::<i8>("padding", slot(0), false)?
    .visit_field::<i32>("stride_w", slot(1), false)?
    .visit_field::<i32>("stride_h", slot(2), false)?
    .visit_field::<i8>("fused_activation_function", slot(3), false)?
    .visit_field::<i32>("dilation_w_factor", slot(4), false)?
    .visit_field::<i32>("dilation_h_factor", slot(5), false)?);
options!(Conv2DOptions, 1);

impl Conv2DOptions<'_> {
    scalar!(padding, 0, i8, 0);
    scalar!(stride_w, 1, i32, 0);
    scalar!(stride_h, 2, i32, 0);
    scalar!(activation, 3, i8, 0);
    scalar!(dilation_w, 4, i32, 1);
    scalar!(dilation_h, 5, i32, 1);
}

// table DepthwiseConv2DOptions { padding; stride_w; stride_h; depth_multiplier:int;
//   fused_activation_function; dilation_w_factor:int = 1; dilation_h_factor:int = 1; }
table!(DepthwiseConv2DOptions, |tv| tv
    .visit_field::<i8>("padding", slot(0), false)?
    .visit_field::<i32>("stride_w", slot(1), false)?
    .visit_field::<i32>("stride_h", slot(2), false)?
    .visit_field::<i32>("depth_multiplier", slot(3), false)?
    .visit_field::<i8>("fused_activation_function", slot(4), false)?
    .visit_field::<i32>("dilation_w_factor", slot(5), false)?
    .visit_field::<i32>("dilation_h_factor", slot(6), false)?);
options!(DepthwiseConv2DOptions, 2);

impl DepthwiseConv2DOptions<'_> {
    scalar!(padding, 0, i8, 0);
    scalar!(stride_w, 1, i32, 0);
    scalar!(stride_h, 2, i32, 0);
    scalar!(depth_multiplier, 3, i32, 0);
    scalar!(activation, 4, i8, 0);
    scalar!(dilation_w, 5, i32, 1);
    scalar!(dilation_h, 6, i32, 1);
}

// table Pool2DOptions { padding; stride_w; stride_h; filter_width:int; filter_height:int;
//   fused_activation_function; }
table!(Pool2DOptions, |tv| tv
    .visit_field::<i8>("padding", slot(0), false)?
    .visit_field::<i32>("stride_w", slot(1), false)?
    .visit_field::<i32>("stride_h", slot(2), false)?
    .visit_field::<i32>("filter_width", slot(3), false)?
    .visit_field::<i32>("filter_height", slot(4), false)?
    .visit_field::<i8>(
        "fused_activation_function",
        slot(5),
        false
    )?);
options!(Pool2DOptions, 5);

impl Pool2DOptions<'_> {
    scalar!(padding, 0, i8, 0);
    scalar!(stride_w, 1, i32, 0);
    scalar!(stride_h, 2, i32, 0);
    scalar!(filter_width, 3, i32, 0);
    scalar!(filter_height, 4, i32, 0);
    scalar!(activation, 5, i8, 0);
}

// table FullyConnectedOptions { fused_activation_function; weights_format:byte = DEFAULT;
//   keep_num_dims:bool; asymmetric_quantize_inputs:bool; ... }
table!(FullyConnectedOptions, |tv| tv
    .visit_field::<i8>("fused_activation_function", slot(0), false)?
    .visit_field::<i8>("weights_format", slot(1), false)?);
options!(FullyConnectedOptions, 8);

impl FullyConnectedOptions<'_> {
    scalar!(activation, 0, i8, 0);
    scalar!(weights_format, 1, i8, 0);
}

// table AddOptions { fused_activation_function:byte; pot_scale_int16:bool = true; }
table!(AddOptions, |tv| tv
    .visit_field::<i8>("fused_activation_function", slot(0), false)?
    .visit_field::<bool>("pot_scale_int16", slot(1), false)?);
options!(AddOptions, 11);

impl AddOptions<'_> {
    scalar!(activation, 0, i8, 0);
}

// table MulOptions { fused_activation_function:byte; }
table!(MulOptions, |tv| tv.visit_field::<i8>(
    "fused_activation_function",
    slot(0),
    false
)?);
options!(MulOptions, 21);

impl MulOptions<'_> {
    scalar!(activation, 0, i8, 0);
}

// table LeakyReluOptions { alpha:float; }
table!(LeakyReluOptions, |tv| tv.visit_field::<f32>(
    "alpha",
    slot(0),
    false
)?);
options!(LeakyReluOptions, 75);

impl LeakyReluOptions<'_> {
    scalar!(alpha, 0, f32, 0.0);
}

// table SoftmaxOptions { beta:float; }
table!(SoftmaxOptions, |tv| tv.visit_field::<f32>(
    "beta",
    slot(0),
    false
)?);
options!(SoftmaxOptions, 9);

impl SoftmaxOptions<'_> {
    scalar!(beta, 0, f32, 0.0);
}

// table ReshapeOptions { new_shape:[int]; }
table!(ReshapeOptions, |tv| tv
    .visit_field::<ForwardsUOffset<Vector<i32>>>(
        "new_shape",
        slot(0),
        false
    )?);
options!(ReshapeOptions, 17);

impl<'a> ReshapeOptions<'a> {
    field!(new_shape, 0, Vector<'a, i32>);
}

// table StridedSliceOptions { begin_mask:int; end_mask:int; ellipsis_mask:int;
//   new_axis_mask:int; shrink_axis_mask:int; offset:bool; }
table!(StridedSliceOptions, |tv| tv
    .visit_field::<i32>("begin_mask", slot(0), false)?
    .visit_field::<i32>("end_mask", slot(1), false)?
    .visit_field::<i32>("ellipsis_mask", slot(2), false)?
    .visit_field::<i32>("new_axis_mask", slot(3), false)?
    .visit_field::<i32>("shrink_axis_mask", slot(4), false)?
    .visit_field::<bool>("offset", slot(5), false)?);
options!(StridedSliceOptions, 32);

impl StridedSliceOptions<'_> {
    scalar!(begin_mask, 0, i32, 0);
    scalar!(end_mask, 1, i32, 0);
    scalar!(ellipsis_mask, 2, i32, 0);
    scalar!(new_axis_mask, 3, i32, 0);
    scalar!(shrink_axis_mask, 4, i32, 0);
    scalar!(offset, 5, bool, false);
}

// table PackOptions { values_count:int; axis:int; }
table!(PackOptions, |tv| tv
    .visit_field::<i32>("values_count", slot(0), false)?
    .visit_field::<i32>("axis", slot(1), false)?);
options!(PackOptions, 59);

impl PackOptions<'_> {
    scalar!(values_count, 0, i32, 0);
    scalar!(axis, 1, i32, 0);
}

/// Parses and verifies a model flatbuffer.
pub fn root(bytes: &[u8]) -> Result<Model<'_>, InvalidFlatbuffer> {
    flatbuffers::root::<Model>(bytes)
}

/// TFLite's `TensorType` codes this importer distinguishes.
pub mod tensor_type {
    /// float32
    pub const FLOAT32: i8 = 0;
    /// int32
    pub const INT32: i8 = 2;
    /// int8
    pub const INT8: i8 = 9;

    /// TFLite's name for a type code.
    pub fn name(t: i8) -> &'static str {
        const NAMES: [&str; 18] = [
            "FLOAT32",
            "FLOAT16",
            "INT32",
            "UINT8",
            "INT64",
            "STRING",
            "BOOL",
            "INT16",
            "COMPLEX64",
            "INT8",
            "FLOAT64",
            "COMPLEX128",
            "UINT64",
            "RESOURCE",
            "VARIANT",
            "UINT32",
            "UINT16",
            "INT4",
        ];
        usize::try_from(t)
            .ok()
            .and_then(|i| NAMES.get(i))
            .copied()
            .unwrap_or("unknown type")
    }

    /// Bytes per element of the types whose data the importer reads.
    pub fn size(t: i8) -> Option<usize> {
        match t {
            FLOAT32 | INT32 => Some(4),
            INT8 => Some(1),
            _ => None,
        }
    }
}
