"""rtdet.data.epoch: the epoch set in the main process reaches persistent worker processes."""

from __future__ import annotations

from torch.utils.data import DataLoader

from rtdet.data.epoch import EpochDataset


class Epochs(EpochDataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> int:
        return self.epoch


def test_set_epoch_reaches_persistent_workers():
    ds = Epochs()
    loader = DataLoader(ds, batch_size=2, num_workers=1, persistent_workers=True)
    seen = []
    for epoch in (0, 3, 7):
        ds.set_epoch(epoch)
        seen += [int(v) for batch in loader for v in batch]
    assert seen == [0, 0, 3, 3, 7, 7] and ds.epoch == 7
