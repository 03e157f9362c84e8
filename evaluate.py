"""Evaluate a model on a whole split: the one function training, the notebook and the app share."""
from dataclasses import dataclass

import torch

from nn import log_softmax


@dataclass
class Evaluation:
    loss: float                 # mean cross-entropy over the split
    accuracy: float             # fraction correct, 0..1
    predictions: torch.Tensor   # (N,) predicted class
    probabilities: torch.Tensor  # (N, 10)
    labels: torch.Tensor        # (N,) true class


def evaluate(model, images, labels, batch_size=1000):
    """Loss (summed over samples, divided by N), accuracy, predictions and probabilities, in
    batches on the tensors' device. The model is put in eval mode and restored after."""
    if len(labels) == 0:
        raise ValueError('cannot evaluate on an empty split')
    was_training = model.training
    model.eval()
    total_loss, log_probs = 0.0, []
    for start in range(0, len(labels), batch_size):
        log_p = log_softmax(model.logits(images[start:start + batch_size]))
        total_loss += -log_p.gather(1, labels[start:start + batch_size, None]).sum().item()
        log_probs.append(log_p)
    model.train(was_training)
    probabilities = torch.cat(log_probs).exp()
    predictions = probabilities.argmax(1)
    return Evaluation(loss=total_loss / len(labels),
                      accuracy=(predictions == labels).float().mean().item(),
                      predictions=predictions, probabilities=probabilities, labels=labels)
