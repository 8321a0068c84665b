//! TFLite builtin operator codes (`BuiltinOperator` in schema.fbs).

/// `ADD`.
pub const ADD: i32 = 0;
/// `AVERAGE_POOL_2D`.
pub const AVERAGE_POOL_2D: i32 = 1;
/// `CONCATENATION`.
pub const CONCATENATION: i32 = 2;
/// `LOGISTIC`.
pub const LOGISTIC: i32 = 14;
/// `TANH`.
pub const TANH: i32 = 28;
/// `MUL`.
pub const MUL: i32 = 18;
/// `RELU`.
pub const RELU: i32 = 19;
/// `RELU_N1_TO_1`.
pub const RELU_N1_TO_1: i32 = 20;
/// `RELU6`.
pub const RELU6: i32 = 21;
/// `LEAKY_RELU`.
pub const LEAKY_RELU: i32 = 98;
/// `PAD`.
pub const PAD: i32 = 34;
/// `MEAN`.
pub const MEAN: i32 = 40;
/// `PADV2`.
pub const PADV2: i32 = 60;
/// `HARD_SWISH`.
pub const HARD_SWISH: i32 = 117;
/// `CONV_2D`.
pub const CONV_2D: i32 = 3;
/// `DEPTHWISE_CONV_2D`.
pub const DEPTHWISE_CONV_2D: i32 = 4;
/// `DEQUANTIZE`.
pub const DEQUANTIZE: i32 = 6;
/// `FULLY_CONNECTED`.
pub const FULLY_CONNECTED: i32 = 9;
/// `MAX_POOL_2D`.
pub const MAX_POOL_2D: i32 = 17;
/// `RESHAPE`.
pub const RESHAPE: i32 = 22;
/// `SOFTMAX`.
pub const SOFTMAX: i32 = 25;
/// `CUSTOM`.
pub const CUSTOM: i32 = 32;
/// `STRIDED_SLICE`.
pub const STRIDED_SLICE: i32 = 45;
/// `SHAPE`.
pub const SHAPE: i32 = 77;
/// `PACK`.
pub const PACK: i32 = 83;
/// `QUANTIZE`.
pub const QUANTIZE: i32 = 114;

/// Names of the codes 0 to 157, in order.
const NAMES: [&str; 158] = [
    "ADD",
    "AVERAGE_POOL_2D",
    "CONCATENATION",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "DEPTH_TO_SPACE",
    "DEQUANTIZE",
    "EMBEDDING_LOOKUP",
    "FLOOR",
    "FULLY_CONNECTED",
    "HASHTABLE_LOOKUP",
    "L2_NORMALIZATION",
    "L2_POOL_2D",
    "LOCAL_RESPONSE_NORMALIZATION",
    "LOGISTIC",
    "LSH_PROJECTION",
    "LSTM",
    "MAX_POOL_2D",
    "MUL",
    "RELU",
    "RELU_N1_TO_1",
    "RELU6",
    "RESHAPE",
    "RESIZE_BILINEAR",
    "RNN",
    "SOFTMAX",
    "SPACE_TO_DEPTH",
    "SVDF",
    "TANH",
    "CONCAT_EMBEDDINGS",
    "SKIP_GRAM",
    "CALL",
    "CUSTOM",
    "EMBEDDING_LOOKUP_SPARSE",
    "PAD",
    "UNIDIRECTIONAL_SEQUENCE_RNN",
    "GATHER",
    "BATCH_TO_SPACE_ND",
    "SPACE_TO_BATCH_ND",
    "TRANSPOSE",
    "MEAN",
    "SUB",
    "DIV",
    "SQUEEZE",
    "UNIDIRECTIONAL_SEQUENCE_LSTM",
    "STRIDED_SLICE",
    "BIDIRECTIONAL_SEQUENCE_RNN",
    "EXP",
    "TOPK_V2",
    "SPLIT",
    "LOG_SOFTMAX",
    "DELEGATE",
    "BIDIRECTIONAL_SEQUENCE_LSTM",
    "CAST",
    "PRELU",
    "MAXIMUM",
    "ARG_MAX",
    "MINIMUM",
    "LESS",
    "NEG",
    "PADV2",
    "GREATER",
    "GREATER_EQUAL",
    "LESS_EQUAL",
    "SELECT",
    "SLICE",
    "SIN",
    "TRANSPOSE_CONV",
    "SPARSE_TO_DENSE",
    "TILE",
    "EXPAND_DIMS",
    "EQUAL",
    "NOT_EQUAL",
    "LOG",
    "SUM",
    "SQRT",
    "RSQRT",
    "SHAPE",
    "POW",
    "ARG_MIN",
    "FAKE_QUANT",
    "REDUCE_PROD",
    "REDUCE_MAX",
    "PACK",
    "LOGICAL_OR",
    "ONE_HOT",
    "LOGICAL_AND",
    "LOGICAL_NOT",
    "UNPACK",
    "REDUCE_MIN",
    "FLOOR_DIV",
    "REDUCE_ANY",
    "SQUARE",
    "ZEROS_LIKE",
    "FILL",
    "FLOOR_MOD",
    "RANGE",
    "RESIZE_NEAREST_NEIGHBOR",
    "LEAKY_RELU",
    "SQUARED_DIFFERENCE",
    "MIRROR_PAD",
    "ABS",
    "SPLIT_V",
    "UNIQUE",
    "CEIL",
    "REVERSE_V2",
    "ADD_N",
    "GATHER_ND",
    "COS",
    "WHERE",
    "RANK",
    "ELU",
    "REVERSE_SEQUENCE",
    "MATRIX_DIAG",
    "QUANTIZE",
    "MATRIX_SET_DIAG",
    "ROUND",
    "HARD_SWISH",
    "IF",
    "WHILE",
    "NON_MAX_SUPPRESSION_V4",
    "NON_MAX_SUPPRESSION_V5",
    "SCATTER_ND",
    "SELECT_V2",
    "DENSIFY",
    "SEGMENT_SUM",
    "BATCH_MATMUL",
    "PLACEHOLDER_FOR_GREATER_OP_CODES",
    "CUMSUM",
    "CALL_ONCE",
    "BROADCAST_TO",
    "RFFT2D",
    "CONV_3D",
    "IMAG",
    "REAL",
    "COMPLEX_ABS",
    "HASHTABLE",
    "HASHTABLE_FIND",
    "HASHTABLE_IMPORT",
    "HASHTABLE_SIZE",
    "REDUCE_ALL",
    "CONV_3D_TRANSPOSE",
    "VAR_HANDLE",
    "READ_VARIABLE",
    "ASSIGN_VARIABLE",
    "BROADCAST_ARGS",
    "RANDOM_STANDARD_NORMAL",
    "BUCKETIZE",
    "RANDOM_UNIFORM",
    "MULTINOMIAL",
    "GELU",
    "DYNAMIC_UPDATE_SLICE",
    "RELU_0_TO_1",
    "UNSORTED_SEGMENT_PROD",
    "UNSORTED_SEGMENT_MAX",
    "UNSORTED_SEGMENT_SUM",
    "ATAN2",
    "UNSORTED_SEGMENT_MIN",
];

/// TFLite's name for a builtin operator code.
pub fn name(code: i32) -> String {
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map_or_else(|| format!("BUILTIN_{code}"), |n| (*n).to_string())
}
