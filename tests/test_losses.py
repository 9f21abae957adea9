"""The training losses against values worked out by hand: each FER+ label mode, and distillation.

The logits are logs of chosen probabilities (plus a per-row offset softmax ignores), so every
expected value is a sum of logs of explicit numbers, never the function under test."""

import math

import numpy as np
import pytest
import torch

from ferkit.augment import Mix
from ferkit.config import TrainConfig
from ferkit.distill import distill_loss, teacher_probs, with_teacher
from ferkit.train import mixed_loss, task_loss

P = [[0.125, 0.25, 0.625],  # the softmax of LOGITS, row by row
     [0.5, 0.3, 0.2]]
LOGITS = torch.log(torch.tensor(P)) + torch.tensor([[3.0], [-1.0]])
C = 3


def loss(mode: str, y, targets=None, smoothing: float = 0.0, seed: int = 0) -> float:
    cfg = TrainConfig(label_mode=mode, label_smoothing=smoothing)
    t = torch.tensor(targets, dtype=torch.float32) if targets is not None else None
    return task_loss(LOGITS, torch.tensor(y), t, cfg, torch.Generator().manual_seed(seed)).item()


def test_majority_is_cross_entropy_on_the_majority_emotion():
    expected = -(math.log(0.625) + math.log(0.5)) / 2
    assert loss("majority", [2, 0]) == pytest.approx(expected, rel=1e-6)


def test_majority_with_label_smoothing_spreads_eps_over_every_class():
    eps = 0.3  # target (1 - eps) on the label + eps / C on each class
    row0 = (1 - eps) * -math.log(0.625) + eps / C * -sum(map(math.log, P[0]))
    row1 = (1 - eps) * -math.log(0.5) + eps / C * -sum(map(math.log, P[1]))
    assert loss("majority", [2, 0], smoothing=eps) == pytest.approx((row0 + row1) / 2, rel=1e-6)
    # fit passes no targets for majority; one-hot targets, if given, mean the same (and are smoothed)
    one_hot = [[0, 0, 1], [1, 0, 0]]
    assert loss("majority", [2, 0], one_hot, smoothing=eps) == pytest.approx((row0 + row1) / 2, rel=1e-6)


def test_crossentropy_uses_the_vote_distribution_as_soft_targets():
    votes = [[0, 0.4, 0.6], [0.5, 0.5, 0]]
    row0 = -(0.4 * math.log(0.25) + 0.6 * math.log(0.625))
    row1 = -(0.5 * math.log(0.5) + 0.5 * math.log(0.3))
    assert loss("crossentropy", [2, 0], votes) == pytest.approx((row0 + row1) / 2, rel=1e-6)
    eps = 0.3  # smoothing mixes the soft targets with the uniform distribution
    q = (1 - eps) * np.array(votes) + eps / C
    expected = -(q * np.log(P)).sum(1).mean()
    assert loss("crossentropy", [2, 0], votes, smoothing=eps) == pytest.approx(expected, rel=1e-6)


def test_multi_target_scores_the_likeliest_accepted_emotion():
    # row 0 accepts classes 0 and 1 (p 0.125, 0.25): its best is 0.25, neither the argmax of the
    # logits nor the first accepted class; row 1 accepts 1 and 2 (p 0.3, 0.2): 0.3
    accepted = [[1, 1, 0], [0, 1, 1]]
    expected = -(math.log(0.25) + math.log(0.3)) / 2
    assert loss("multi_target", [0, 1], accepted) == pytest.approx(expected, rel=1e-6)


def test_probability_draws_a_label_from_the_votes_each_time():
    # One face with votes 25% class 0, 75% class 1, none for class 2: each call is the cross-entropy
    # on one drawn label, -log 0.125 or -log 0.25, in about those proportions; never class 2's.
    on = {0: -math.log(0.125), 1: -math.log(0.25), 2: -math.log(0.625)}
    cfg = TrainConfig(label_mode="probability")
    gen = torch.Generator().manual_seed(0)
    targets, y = torch.tensor([[0.25, 0.75, 0.0]]), torch.tensor([1])
    drawn = []
    for _ in range(400):
        v = task_loss(LOGITS[:1], y, targets, cfg, gen).item()
        matches = [c for c, ce in on.items() if abs(v - ce) < 1e-5]
        assert len(matches) == 1, f"loss {v} is the cross-entropy of no single label"
        drawn.append(matches[0])
    share = np.bincount(drawn, minlength=3) / len(drawn)
    assert share[2] == 0 and 0.18 < share[0] < 0.32, share  # binomial sd 0.022 around 0.25


def test_probability_on_a_batch_averages_the_drawn_labels():
    # Many copies of one face: the mean over draws is the expected cross-entropy, 0.25 -log 0.125 +
    # 0.75 -log 0.25 = 1.56, well away from the majority label's -log 0.25 = 1.39.
    cfg = TrainConfig(label_mode="probability")
    n = 4000
    logits, targets = LOGITS[:1].expand(n, -1), torch.tensor([[0.25, 0.75, 0.0]]).expand(n, -1)
    v = task_loss(logits, torch.ones(n, dtype=torch.long), targets, cfg, torch.Generator().manual_seed(1)).item()
    expected = 0.25 * -math.log(0.125) + 0.75 * -math.log(0.25)
    assert v == pytest.approx(expected, abs=0.03)  # sd of the mean: 0.3 / sqrt(4000) = 0.005


# Distillation: teacher and student logits are temp * log(probabilities), so their softened
# probabilities at that temperature are those numbers exactly.
Q = [[0.7, 0.2, 0.1],  # the teacher's softened probabilities
     [0.1, 0.1, 0.8]]


def kl_by_hand(q, p) -> float:
    """KL(q || p), averaged over the rows."""
    return sum(sum(qi * math.log(qi / pi) for qi, pi in zip(qr, pr)) for qr, pr in zip(q, p)) / len(q)


@pytest.mark.parametrize("temp", [1.0, 2.0, 4.0])
def test_distillation_is_kl_to_the_softened_teacher_times_temp_squared(temp):
    student, teacher = temp * torch.log(torch.tensor(P)), temp * torch.log(torch.tensor(Q))
    expected = kl_by_hand(Q, P) * temp**2
    assert distill_loss(student, teacher, temp).item() == pytest.approx(expected, rel=1e-5)
    # KL is not symmetric: the teacher's distribution is the one the expectation is taken under
    assert kl_by_hand(P, Q) * temp**2 != pytest.approx(expected, rel=1e-2)


def test_a_student_that_matches_its_teacher_has_no_distillation_loss():
    logits = torch.tensor([[1.0, -2.0, 0.5]])
    assert distill_loss(logits, logits, 3.0).item() == pytest.approx(0, abs=1e-6)


def test_distillation_is_mixed_with_the_label_loss_by_its_weight():
    temp, w = 2.0, 0.3
    student, teacher = temp * torch.log(torch.tensor(P)), temp * torch.log(torch.tensor(Q))
    label_loss = torch.tensor(1.7)
    cfg = TrainConfig(distill=w, distill_temp=temp)
    expected = (1 - w) * 1.7 + w * kl_by_hand(Q, P) * temp**2
    assert with_teacher(label_loss, student, teacher, cfg).item() == pytest.approx(expected, rel=1e-5)


# Two teachers: their logits are temp * log of chosen probabilities, so each one's softened
# probabilities are those numbers, and the ensemble's are their average, written out.
Q2 = [[0.1, 0.3, 0.6],
      [0.5, 0.3, 0.2]]
AVERAGE = [[0.4, 0.25, 0.35],  # (Q + Q2) / 2, by hand
           [0.3, 0.2, 0.5]]


@pytest.mark.parametrize("temp", [1.0, 3.0])
def test_two_teachers_distil_towards_the_average_of_their_softened_probabilities(temp):
    student = temp * torch.log(torch.tensor(P))
    teachers = [temp * torch.log(torch.tensor(Q)), temp * torch.log(torch.tensor(Q2))]
    torch.testing.assert_close(teacher_probs(teachers, temp), torch.tensor(AVERAGE))
    expected = kl_by_hand(AVERAGE, P) * temp**2
    assert distill_loss(student, teachers, temp).item() == pytest.approx(expected, rel=1e-5)
    # not the softmax of the averaged logits (a geometric mean of the probabilities)
    mean_logits = (teachers[0] + teachers[1]) / 2
    assert distill_loss(student, mean_logits, temp).item() != pytest.approx(expected, rel=1e-2)


def test_the_second_teacher_changes_the_loss():
    temp = 2.0
    student, first = temp * torch.log(torch.tensor(P)), temp * torch.log(torch.tensor(Q))
    second = temp * torch.log(torch.tensor(Q2))
    cfg = TrainConfig(distill=0.5, distill_temp=temp)
    one, two = with_teacher(torch.tensor(1.0), student, [first], cfg), with_teacher(torch.tensor(1.0), student, [first, second], cfg)
    assert one.item() == pytest.approx(0.5 + 0.5 * kl_by_hand(Q, P) * temp**2, rel=1e-5)
    assert two.item() == pytest.approx(0.5 + 0.5 * kl_by_hand(AVERAGE, P) * temp**2, rel=1e-5)
    assert abs(two.item() - one.item()) > 0.1


# Mixed faces (mixup, CutMix): face 0 is 70% itself and 30% face 1, face 1 the other way round.
SWAP = Mix(0.7, torch.tensor([1, 0]))


def mixed(mode: str, y, targets=None, smoothing: float = 0.0) -> float:
    cfg = TrainConfig(label_mode=mode, label_smoothing=smoothing)
    t = torch.tensor(targets, dtype=torch.float32) if targets is not None else None
    return mixed_loss(LOGITS, torch.tensor(y), t, SWAP, cfg, torch.Generator().manual_seed(0)).item()


def test_mixed_hard_labels_are_cross_entropy_on_the_mixed_one_hot_targets():
    # face 0: 0.7 on class 2 + 0.3 on class 0; face 1: 0.7 on class 0 + 0.3 on class 2
    row0 = -(0.7 * math.log(0.625) + 0.3 * math.log(0.125))
    row1 = -(0.7 * math.log(0.5) + 0.3 * math.log(0.2))
    assert mixed("majority", [2, 0]) == pytest.approx((row0 + row1) / 2, rel=1e-6)
    eps = 0.3  # smoothing applies to the mixed targets
    q = (1 - eps) * np.array([[0.3, 0, 0.7], [0.7, 0, 0.3]]) + eps / C
    assert mixed("majority", [2, 0], smoothing=eps) == pytest.approx(-(q * np.log(P)).sum(1).mean(), rel=1e-6)


def test_mixed_ferplus_votes_are_cross_entropy_on_the_mixed_votes():
    votes = [[0, 0.4, 0.6], [0.5, 0.5, 0]]
    q = [[0.15, 0.43, 0.42],  # 0.7 votes[0] + 0.3 votes[1], by hand
         [0.35, 0.47, 0.18]]  # 0.7 votes[1] + 0.3 votes[0]
    expected = -sum(qi * math.log(pi) for qr, pr in zip(q, P) for qi, pi in zip(qr, pr)) / 2
    assert mixed("crossentropy", [2, 0], votes) == pytest.approx(expected, rel=1e-6)


def test_mixed_multi_target_weighs_the_two_faces_likeliest_accepted_emotions():
    accepted = [[1, 1, 0], [0, 1, 1]]  # face 0's best: 0.25 of its own set, 0.625 of face 1's; face 1's: 0.3 and 0.5
    row0 = 0.7 * -math.log(0.25) + 0.3 * -math.log(0.625)
    row1 = 0.7 * -math.log(0.3) + 0.3 * -math.log(0.5)
    assert mixed("multi_target", [0, 1], accepted) == pytest.approx((row0 + row1) / 2, rel=1e-6)
