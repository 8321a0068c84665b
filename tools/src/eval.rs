//! Accuracy and confusion matrix of a model on a labelled set of inputs.

use crate::inspect::thousands;
use serde_json::json;
use std::fmt::Write as _;

/// What `fixnet eval` measures.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Images evaluated.
    pub images: usize,
    /// Images whose top-1 class equals the label.
    pub correct: usize,
    /// `confusion[label][predicted]`.
    pub confusion: Vec<Vec<usize>>,
    /// Wall-clock seconds of inference (images already decoded).
    pub seconds: f64,
    /// Threads the inference ran on.
    pub threads: usize,
}

impl Evaluation {
    /// Scores `outputs` (one row of `classes` int8 values per image) against `labels`; the
    /// prediction is the first maximum, as `Interpreter::top1`.
    pub fn score(outputs: &[i8], classes: usize, labels: &[usize], seconds: f64) -> Self {
        let n_classes = classes.max(
            labels
                .iter()
                .map(|&l| l.saturating_add(1))
                .max()
                .unwrap_or(0),
        );
        let mut confusion = vec![vec![0usize; n_classes]; n_classes];
        let mut correct = 0;
        for (row, &label) in outputs.chunks_exact(classes.max(1)).zip(labels) {
            let (pred, _) = fixnet::interpreter::top1(row);
            confusion[label][pred] += 1;
            correct += usize::from(pred == label);
        }
        Evaluation {
            images: labels.len().min(outputs.len() / classes.max(1)),
            correct,
            confusion,
            seconds,
            threads: 1,
        }
    }

    /// Fraction correct.
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.images.max(1) as f64
    }

    /// Inference throughput.
    pub fn images_per_second(&self) -> f64 {
        self.images as f64 / self.seconds.max(1e-9)
    }

    /// The report as JSON.
    pub fn to_json(&self, model: &str) -> serde_json::Value {
        json!({
            "model": model,
            "images": self.images,
            "correct": self.correct,
            "accuracy": self.accuracy(),
            "confusion": self.confusion,
            "confusion_axes": "rows: true label, columns: predicted class",
            "seconds": self.seconds,
            "images_per_second": self.images_per_second(),
            "threads": self.threads,
        })
    }

    /// The human-readable report.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "accuracy: {:.2}% ({}/{} correct)",
            100.0 * self.accuracy(),
            thousands(self.correct),
            thousands(self.images)
        );
        let _ = writeln!(
            s,
            "confusion matrix (rows: true label, columns: predicted):"
        );
        let w = self
            .confusion
            .iter()
            .flatten()
            .map(|v| v.to_string().len())
            .max()
            .unwrap_or(1)
            .max(self.confusion.len().to_string().len())
            .max(3);
        let _ = write!(s, "{:>4}", "");
        for c in 0..self.confusion.len() {
            let _ = write!(s, " {c:>w$}");
        }
        let _ = writeln!(s);
        for (label, row) in self.confusion.iter().enumerate() {
            let _ = write!(s, "{label:>4}");
            for v in row {
                let _ = write!(s, " {v:>w$}");
            }
            let _ = writeln!(s);
        }
        let _ = writeln!(
            s,
            "time: {:.3} s, {:.0} images/s (host, {} thread{})",
            self.seconds,
            self.images_per_second(),
            self.threads,
            if self.threads == 1 { "" } else { "s" }
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_first_maximum() {
        let outputs = [1i8, 5, 5, 9, 0, 0, -3, -3, -3];
        let e = Evaluation::score(&outputs, 3, &[1, 0, 2], 1.0);
        assert_eq!(e.correct, 2);
        assert_eq!(e.confusion[1][1], 1);
        assert_eq!(e.confusion[2][0], 1);
        assert!((e.accuracy() - 2.0 / 3.0).abs() < 1e-12);
    }
}
