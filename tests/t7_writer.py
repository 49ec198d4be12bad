"""A minimal writer of Lua Torch7 binary .t7 files, so tests can make the Lua release's layout.

It writes the subset torchfile reads back for an ``nn.Sequential`` of convolutions: nil, numbers,
strings, tables, FloatTensor/FloatStorage and generic torch classes (a class name + a table).
Format: torch7's File.lua ``writeObject`` (type tag int32, then the payload; 8-byte longs).
"""

from __future__ import annotations

import struct
from typing import BinaryIO

import numpy as np

TYPE_NIL, TYPE_NUMBER, TYPE_STRING, TYPE_TABLE, TYPE_TORCH = 0, 1, 2, 3, 4


class LuaObject:
    """A torch class instance: ``class_name`` (e.g. ``nn.SpatialConvolution``) + its fields."""

    def __init__(self, class_name: str, fields: dict):
        self.class_name = class_name
        self.fields = fields


class _Writer:
    def __init__(self, handle: BinaryIO):
        self.handle = handle
        self.next_index = 1

    def _int(self, value: int) -> None:
        self.handle.write(struct.pack("<i", value))

    def _long(self, value: int) -> None:
        self.handle.write(struct.pack("<q", value))

    def _string(self, value: str) -> None:
        data = value.encode()
        self._int(len(data))
        self.handle.write(data)

    def _reference(self) -> None:
        self._int(self.next_index)
        self.next_index += 1

    def write(self, obj: object) -> None:
        if obj is None:
            self._int(TYPE_NIL)
        elif isinstance(obj, bool | int | float):
            self._int(TYPE_NUMBER)
            self.handle.write(struct.pack("<d", float(obj)))
        elif isinstance(obj, str):
            self._int(TYPE_STRING)
            self._string(obj)
        elif isinstance(obj, dict | list):
            items = obj.items() if isinstance(obj, dict) else enumerate(obj, start=1)
            items = list(items)
            self._int(TYPE_TABLE)
            self._reference()
            self._int(len(items))
            for key, value in items:
                self.write(key)
                self.write(value)
        elif isinstance(obj, np.ndarray):
            self._tensor(np.ascontiguousarray(obj, dtype=np.float32))
        elif isinstance(obj, LuaObject):
            self._int(TYPE_TORCH)
            self._reference()
            self._string("V 1")
            self._string(obj.class_name)
            self.write(obj.fields)
        else:
            raise TypeError(f"cannot write {type(obj)}")

    def _tensor(self, array: np.ndarray) -> None:
        self._int(TYPE_TORCH)
        self._reference()
        self._string("V 1")
        self._string("torch.FloatTensor")
        self._int(array.ndim)
        for size in array.shape:
            self._long(size)
        for stride in (s // array.itemsize for s in array.strides):
            self._long(stride)
        self._long(1)  # storage offset, 1-based
        self._int(TYPE_TORCH)
        self._reference()
        self._string("V 1")
        self._string("torch.FloatStorage")
        self._long(array.size)
        self.handle.write(array.tobytes())


def save_t7(obj: object, path) -> None:
    with open(path, "wb") as handle:
        _Writer(handle).write(obj)


def sequential_from_state_dict(state: dict, num_modules: int, flat_weights: bool = False):
    """An ``nn.Sequential`` LuaObject whose module i holds ``state[f"{i}.weight"/"{i}.bias"]``.

    Modules without weights become ``nn.ReLU`` placeholders (the reader skips them).
    ``flat_weights`` stores convolution weights as old Torch7 did, ``(nOut, nIn*kH*kW)``.
    """
    modules = []
    for index in range(num_modules):
        weight = state.get(f"{index}.weight")
        if weight is None:
            modules.append(LuaObject("nn.ReLU", {"train": False}))
            continue
        weight = weight.numpy()
        n_out, n_in, k_h, k_w = weight.shape
        stored = weight.reshape(n_out, -1) if flat_weights else weight
        fields = {
            "weight": stored,
            "bias": state[f"{index}.bias"].numpy(),
            "nInputPlane": n_in,
            "nOutputPlane": n_out,
            "kH": k_h,
            "kW": k_w,
            "dH": 1,
            "dW": 1,
        }
        modules.append(LuaObject("nn.SpatialConvolution", fields))
    return LuaObject("nn.Sequential", {"modules": modules, "train": False})
