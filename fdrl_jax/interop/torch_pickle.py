"""`torch.save` files read without torch and without running anything they hold.

`torch.load(weights_only=True)` refuses any file that pickles an object other than tensors and
plain containers, and some published checkpoints do: the robustness library saves its
checkpoints with `dill`, which pickles functions and code objects along with the weights
(`cifar_l2_1_0.pt` cannot even be unpickled by plain `pickle`). This reader takes the weights
out of such files safely: its unpickler resolves no global name to anything that can run. A
tensor becomes a numpy array, `collections.OrderedDict` a dict; every other global the file
names (a class, a function, `dill`'s code-object builders, `os.system`, ...) becomes an inert
`Opaque` record that keeps the arguments and state the file gives it and does nothing else, so
calling or building it runs no code.

Both layouts of `torch.save` are read: the zip archive (torch >= 1.6: `<root>/data.pkl` and the
storages as `<root>/data/<key>`) and the legacy stream of pickles (a magic number, the protocol
version, system info, the object, the storage keys, then each storage as an int64 element
count followed by its raw bytes), which older checkpoints use. TorchScript archives have the
zip layout; their modules become `Opaque` records holding their attributes.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from fdrl_jax.errors import DataError, MissingFileError

# torch's storage classes (also under torch.cuda) -> numpy dtypes
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": None,  # no numpy dtype: refused with a message
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


class Opaque:
    """Stands in for an object of a class or function the reader does not trust: `name` is
    its global ("module.name"), `args` what the file called it with, `state` what it set."""

    _global = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> Opaque:
        # pickle's NEWOBJ calls __new__ alone (TorchScript modules), REDUCE the class
        self = super().__new__(cls)
        self.args, self.kwargs, self.state, self.items = args, kwargs, None, []
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    @property
    def name(self) -> str:
        return self._global

    def __setstate__(self, state: Any) -> None:
        self.state = state

    # pickle's APPENDS / SETITEMS on an object of an unknown list or dict subclass
    def append(self, value: Any) -> None:
        self.items.append(value)

    def extend(self, values: Any) -> None:
        self.items.extend(values)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items.append((key, value))

    def __repr__(self) -> str:
        return f"Opaque({self._global})"


def _opaque_class(module: str, name: str) -> type:
    cls_name = name if name.isidentifier() else "Opaque"
    return type(cls_name, (Opaque,), {"_global": f"{module}.{name}"})


class _Storage:
    """A storage the pickle refers to; its bytes arrive later in a legacy file."""

    def __init__(self, key: str, dtype: Any, numel: int):
        self.key, self.dtype, self.numel, self.data = key, dtype, numel, None


class _View(_Storage):
    def __init__(self, base: _Storage, offset: int, size: int):
        super().__init__(f"{base.key}[{offset}:{offset + size}]", base.dtype, size)
        self.base, self.offset = base, offset

    def resolve(self) -> None:
        if self.base.data is not None:
            self.data = self.base.data[self.offset : self.offset + self.numel]


class _Tensor:
    """A tensor whose storage may not be read yet: resolved to numpy after loading."""

    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def to_numpy(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise DataError(f"tensor storage {self.storage.key!r} has no data in the file")
        itemsize = data.dtype.itemsize
        if any(n == 0 for n in self.size):
            return np.zeros(self.size, data.dtype.newbyteorder("="))
        span = zip(self.size, self.stride, strict=True)
        needed = self.offset + sum((n - 1) * s for n, s in span) + 1
        if self.offset < 0 or needed > data.size:
            raise DataError(f"tensor of size {self.size} overruns its storage {self.storage.key}")
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :],
            shape=tuple(self.size),
            strides=tuple(s * itemsize for s in self.stride),
            writeable=False,
        )
        return np.array(view, dtype=data.dtype.newbyteorder("="))  # own, native-order copy


def _rebuild_tensor(storage: Any, offset: int, size: tuple, stride: tuple, *_: Any) -> Any:
    if not isinstance(storage, _Storage):
        return Opaque(storage, offset, size, stride)
    return _Tensor(storage, int(offset), tuple(int(n) for n in size), tuple(int(s) for s in stride))


def _rebuild_parameter(data: Any, *_: Any) -> Any:
    return data


class _Unpickler(pickle.Unpickler):
    """Resolves only the names below; every other global becomes an `Opaque` class."""

    def __init__(self, file: io.BufferedIOBase, storage: Callable[[tuple], _Storage]):
        super().__init__(file)
        self._storage = storage

    def find_class(self, module: str, name: str) -> Any:
        if module in ("torch", "torch.cuda") and name in _STORAGE_DTYPES:
            if _STORAGE_DTYPES[name] is None:
                raise DataError(f"{module}.{name} tensors cannot be read without torch")
            return np.dtype(_STORAGE_DTYPES[name])
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if module == "torch.jit._pickle":  # TorchScript's typed lists: build_intlist, ...
            return lambda value, *_: value
        return _opaque_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid:
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        kind = pid[0].decode() if isinstance(pid[0], bytes) else pid[0]
        if kind != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        return self._storage(pid[1:])


def _to_numpy(obj: Any, seen: dict[int, Any] | None = None) -> Any:
    """Tensors resolved to numpy arrays, through dicts, lists, tuples and `Opaque` records."""
    seen = {} if seen is None else seen
    if id(obj) in seen:
        return seen[id(obj)]
    if isinstance(obj, _Tensor):
        out = seen[id(obj)] = obj.to_numpy()
    elif isinstance(obj, dict):
        out = seen[id(obj)] = type(obj)()
        out.update((k, _to_numpy(v, seen)) for k, v in obj.items())
    elif isinstance(obj, list):
        out = seen[id(obj)] = []
        out.extend(_to_numpy(v, seen) for v in obj)
    elif isinstance(obj, tuple):
        out = seen[id(obj)] = tuple(_to_numpy(v, seen) for v in obj)
    elif isinstance(obj, Opaque):
        seen[id(obj)] = obj
        obj.args = _to_numpy(obj.args, seen)
        obj.state = _to_numpy(obj.state, seen)
        obj.items = _to_numpy(obj.items, seen)
        out = obj
    else:
        out = obj
    return out


def _read_storage(raw: bytes, dtype: np.dtype, numel: int, key: str, big_endian: bool):
    data = np.frombuffer(raw, dtype=dtype.newbyteorder(">" if big_endian else "<"))
    if data.size < numel:
        raise DataError(f"storage {key}: {data.size} elements in the file, expected {numel}")
    return data[:numel]


def _load_zip(z: zipfile.ZipFile) -> Any:
    names = z.namelist()
    pkl = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pkl) != 1:
        raise DataError("not a torch.save archive: no single <root>/data.pkl")
    root = pkl[0][: -len("data.pkl")]
    big = f"{root}byteorder" in names and z.read(f"{root}byteorder").strip() == b"big"
    storages: dict[str, _Storage] = {}

    def storage(pid: tuple) -> _Storage:
        dtype, key, _location, numel = pid[:4]
        key = str(key)
        if key not in storages:
            s = storages[key] = _Storage(key, np.dtype(dtype), int(numel))
            s.data = _read_storage(z.read(f"{root}data/{key}"), s.dtype, s.numel, key, big)
        return storages[key]

    return _to_numpy(_Unpickler(io.BytesIO(z.read(pkl[0])), storage).load())


def _load_legacy(f: io.BufferedIOBase) -> Any:
    def plain(what: str) -> Any:  # the header pickles hold numbers and dicts only
        try:
            return _Unpickler(f, lambda pid: None).load()
        except Exception as e:  # any failure means "not this format"
            raise DataError(f"not a torch.save file ({what}: {e})") from e

    if plain("magic number") != _LEGACY_MAGIC:
        raise DataError("not a torch.save file (no torch magic number)")
    if (version := plain("protocol version")) != _LEGACY_PROTOCOL:
        raise DataError(f"unsupported torch.save protocol version {version}")
    plain("system info")
    storages: dict[str, _Storage] = {}

    def storage(pid: tuple) -> _Storage:
        dtype, key, _location, numel, view = pid[:5]
        key = str(key)
        if key not in storages:
            storages[key] = _Storage(key, np.dtype(dtype), int(numel))
        if view is not None:  # a view into a storage (torch < 1.0): its own key and offset
            view_key, offset, size = view
            if str(view_key) not in storages:
                storages[str(view_key)] = _View(storages[key], int(offset), int(size))
            return storages[str(view_key)]
        return storages[key]

    obj = _Unpickler(f, storage).load()
    keys = plain("storage keys")
    for key in keys:
        s = storages.get(str(key))
        if s is None or isinstance(s, _View):
            raise DataError(f"storage {key!r} is listed but not used: a corrupt file?")
        # torch writes the count and the bytes little-endian whatever the machine
        (numel,) = struct.unpack("<q", f.read(8))
        raw = f.read(numel * s.dtype.itemsize)
        s.data = _read_storage(raw, s.dtype, numel, s.key, big_endian=False)
    for s in storages.values():
        if isinstance(s, _View):
            s.resolve()
    return _to_numpy(obj)


def load(source: str | os.PathLike | bytes) -> Any:
    """The object a `torch.save` file (or TorchScript archive) holds, tensors as numpy arrays
    and untrusted objects as `Opaque` records; nothing from the file is imported or run."""
    if isinstance(source, bytes):
        f: io.BufferedIOBase = io.BytesIO(source)
    else:
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise MissingFileError(f"No file at {path!r}.")
        with open(path, "rb") as fh:
            f = io.BytesIO(fh.read())
    if zipfile.is_zipfile(f):
        f.seek(0)
        with zipfile.ZipFile(f) as z:
            return _load_zip(z)
    f.seek(0)
    return _load_legacy(f)


def state_dict_arrays(obj: Any) -> dict[str, np.ndarray]:
    """Every array in a loaded object, keyed like `state_dict()` ('a.b.weight'), through dicts
    and the attributes of `Opaque` records (a TorchScript module's parameters and buffers)."""
    out: dict[str, np.ndarray] = {}

    def walk(x: Any, prefix: str) -> None:
        if isinstance(x, Opaque):
            x = x.state if isinstance(x.state, dict) else {}
        if isinstance(x, dict):
            for k, v in x.items():
                walk(v, f"{prefix}{k}.")
        elif isinstance(x, np.ndarray):
            out[prefix[:-1]] = x

    walk(obj, "")
    return out
