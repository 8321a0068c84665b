//! The model parser (with and without the CRC check) and, on whatever parses, one inference
//! in a bounded arena and the training planner (plus one training step when cheap).
#![no_main]

use fixnet::train::{TrainConfig, Trainer};
use fixnet::{Interpreter, Model};
use fixnet_fuzz::{macs, Aligned, MAX_ARENA, MAX_MACS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let blob = Aligned::new(data);
    let bytes = blob.bytes();
    let checked = Model::from_bytes(bytes);
    let model = match Model::from_bytes_unchecked_crc(bytes) {
        Ok(model) => model,
        Err(e) => {
            // The CRC check only adds a reason to refuse.
            assert!(
                checked.is_err(),
                "CRC-checked parse accepted what the unchecked one refused: {e:?}"
            );
            return;
        }
    };
    if let Ok(m) = &checked {
        assert_eq!(m.len(), model.len());
    }
    // Accessors of a validated model never fail.
    for i in 0..model.op_count() {
        model.op(i).expect("validated op");
    }
    for t in 0..model.tensor_count() {
        model.tensor(t as u16).expect("validated tensor");
    }
    let (input, output) = (
        model.input().expect("input"),
        model.output().expect("output"),
    );
    let _ = (input, output);

    if model.arena_size() > MAX_ARENA || macs(&model) > MAX_MACS {
        return;
    }
    let mut arena = vec![0u8; model.arena_size()];
    {
        let mut interp = Interpreter::new(&model, &mut arena).expect("arena of arena_size bytes");
        let n = interp.input().len();
        // Input values from the blob's tail: anything an int8 tensor can hold.
        for (i, x) in interp.input_mut().iter_mut().enumerate() {
            *x = data
                .get(data.len().saturating_sub(n) + i)
                .copied()
                .unwrap_or(0) as i8;
        }
        interp.invoke().expect("a validated model runs");
        let _ = interp.top1();
        let _ = interp.output_real(0);
        // The grey-image path on the same model.
        let pixels: Vec<u8> = (0..n).map(|i| (i * 7) as u8).collect();
        interp.set_input_grey(&pixels).expect("input length");
        interp.invoke().expect("a validated model runs");
    }

    // The training planner on every suffix, and one step from the last one that plans.
    let mut chosen = None;
    for k in 0..model.op_count() {
        if let Ok(usage) = Trainer::arena_use(&model, &TrainConfig::new(k)) {
            if usage.total() <= MAX_ARENA {
                chosen = Some((k, usage.total()));
            }
        }
    }
    if let Some((k, total)) = chosen {
        let mut tarena = vec![0u8; total];
        if let Ok(mut trainer) = Trainer::new(&model, k, &mut tarena) {
            let n = model.input().map(|t| t.dims.num_elements()).unwrap_or(0);
            let classes = model.output().map(|t| t.dims.last()).unwrap_or(0);
            let image: Vec<u8> = data.iter().cycle().take(n).copied().collect();
            if image.len() == n && classes > 0 {
                let label = usize::from(data[0]) % classes;
                let _ = trainer.step(&image, label);
                trainer.flush();
                let _ = trainer.guard([(image.as_slice(), label)]);
                let _ = trainer.overlay();
            }
        };
    }
});
