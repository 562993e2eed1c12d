"""Running a student's answer so that only the student's own code can do the exercise: :func:`run`.

While the answer runs (the *window*):

- a call monitor (``sys.monitoring`` from Python 3.12 on, ``sys.setprofile`` on 3.11) refuses every Python
  function whose code comes from the course's files (``utils/``, a chapter notebook, nbgrader's ``source/``)
  or is a copy of the course's code compiled under another name, except the objects the answer is given; it
  also refuses the calls that would switch the guard off (tracers, threads, signals, torch's mode stacks);
- a ``TorchDispatchMode`` sees every ATen operation, whatever its Python spelling: it refuses torch's
  recurrent kernels (``gru_cell``, ``nn.GRU``, ...), refuses autograd where the exercise is a backward pass,
  counts matrix products, and on request refuses tensors computed out of its sight;
- an audit hook (installed once per process by ``import utils.answer_guard``) refuses to open the course's
  files, to start processes, to use ``ctypes`` and to list live objects or other threads' frames;
- warnings are recorded, never printed.

Before the window, no tracer, signal handler or thread of the notebook's own code may be running (it could
watch the checker); after it, the answer must have left none behind, nor a torch mode. A returned tensor is
taken as a plain copy (a tensor subclass could lie about its values). What breaks these rules is reported as
:class:`Breach`, in one line.
"""
import contextlib
import gc
import os
import re
import signal
import sys
import sysconfig
import threading
import warnings
from pathlib import Path
from typing import NamedTuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode, _get_current_dispatch_mode_stack

THIS_FILE = Path(sys._getframe().f_code.co_filename).resolve()  # from the code itself: __file__ can be changed
TOOL_NAME = "gru-course answer guard"
PLAIN = type(torch._C._VariableFunctions.zeros(()))  # torch.Tensor, even if torch.Tensor was replaced
_BASE = torch._C.TensorBase  # an immutable type: its methods cannot be patched

_ROOTS = {THIS_FILE.parent.parent} | ({Path(os.environ["GRU_COURSE_ROOT"]).resolve()}
                                      if os.environ.get("GRU_COURSE_ROOT") else set())
CODE_DIRS = tuple(sorted({str(THIS_FILE.parent)} | {str(root / "utils") for root in _ROOTS}))
NOTEBOOK_DIRS = tuple(sorted(str(root / "notebooks") for root in _ROOTS))
_NBGRADER_SOURCE = re.compile(r"[\\/]source[\\/]ch\d\d[\\/]")
_TRUSTED = tuple({os.path.realpath(sysconfig.get_paths()[key]) for key in ("stdlib", "platstdlib", "purelib",
                                                                          "platlib")}) + CODE_DIRS

# ATen operations (schema names) by what they do
_RECURRENT = re.compile(r"::(_?thnn_|unsafe_(split|chunk)|quantized_(gru|lstm|rnn)|_?cudnn_rnn|miopen_rnn|mkldnn_rnn"
                        r"|_?lstm|gru|rnn_)")
_DERIVATIVE = re.compile(r"::\w*(_backward|_make_dual|_unpack_dual)")
_PRODUCT = re.compile(r"aten::(_?\w*mm|\w*mv|v?dot|inner|outer|ger|addr|matmul|linear|bilinear|_trilinear|einsum"
                      r"|tensordot|kron|chain_matmul|linalg_multi_dot|\w*conv\w*)$")
_NOT_PRODUCT = re.compile(r"convert|reorder|backward")
_AUTOGRAD_FILES = tuple(os.path.join(os.path.dirname(torch.__file__), part) for part in
                        ("_functorch" + os.sep, "func" + os.sep, os.path.join("autograd", "functional.py"),
                         os.path.join("autograd", "forward_ad.py")))
_SMALL_CODE = 64  # bytes of bytecode: a smaller function of the course could be written alike by a student
_ANONYMOUS = ("<lambda>", "<genexpr>", "<listcomp>", "<dictcomp>", "<setcomp>")


class Breach(Exception):
    """What the answer did that a check does not allow, in one line."""


class Refused(PermissionError):
    """Raised into the answer when it does what a check does not allow."""


class Raised(Exception):
    """The answer raised an exception, described while it was still watched: its ``kind`` (class name) and
    ``message``; ``not_implemented`` when it is a NotImplementedError."""

    def __init__(self, kind: str, message: str, not_implemented: bool):
        super().__init__(f"{kind}: {message}")
        self.kind, self.message, self.not_implemented = kind, message, not_implemented


class Outcome(NamedTuple):
    """The answer's value (its tensors as plain copies), the matrix products it made, its warnings."""

    value: object
    products: int
    warnings: tuple


# ------------------------------------------------------------------------------ what belongs to the course

def course_file(path) -> str | None:
    """What ``path`` is when it is one of the course's own files (its code, a chapter notebook with its
    solutions, nbgrader's source notebooks); None otherwise."""
    try:
        path = os.fsdecode(path)
    except TypeError:  # a file descriptor
        return None
    if path.startswith("<"):
        return None
    real = os.path.realpath(path)
    for folder in CODE_DIRS:
        if real.startswith(folder + os.sep):
            return f"the course's code (utils/{os.path.relpath(real, folder)})"
    if real.endswith(".ipynb") and (os.path.dirname(real) in NOTEBOOK_DIRS or _NBGRADER_SOURCE.search(real)):
        return f"a chapter notebook with its solutions ({os.path.basename(real)})"
    return None


def _fingerprint(code) -> tuple:
    return code.co_code, code.co_names, code.co_varnames


def _nested_codes(code):
    yield code
    for constant in code.co_consts:
        if hasattr(constant, "co_code"):
            yield from _nested_codes(constant)


def _file_fingerprints(path: Path) -> dict:
    try:
        module = compile(path.read_bytes(), str(path), "exec")
    except SyntaxError:  # a file being edited: nothing can run a copy of it
        return {}
    return {_fingerprint(code): f"utils/{path.name} ({code.co_qualname})" for code in _nested_codes(module)
            if len(code.co_code) >= _SMALL_CODE and code.co_name not in _ANONYMOUS}


_FINGERPRINT_CACHE = {}  # (path, mtime, size) -> fingerprints; the shared module's serves every fresh copy


def course_fingerprints() -> dict:
    """``fingerprint -> where`` for every sizeable function of the course's code, compiled from its files,
    so that a copy of it compiled under another name (``exec(source)``) is recognised."""
    shared = getattr(sys.modules.get("utils.answer_guard"), "_FINGERPRINT_CACHE", None)
    cache = shared if isinstance(shared, dict) else _FINGERPRINT_CACHE
    prints = {}
    for folder in CODE_DIRS:
        for path in sorted(Path(folder).glob("*.py")):
            stat = path.stat()
            key = (str(path), stat.st_mtime_ns, stat.st_size)
            if key not in cache:
                cache[key] = _file_fingerprints(path)
            prints.update(cache[key])
    return prints


def _codes(objects):
    """Every code object of ``objects`` (functions, methods, classes, an instance's class), nested ones included."""
    for obj in objects:
        if not isinstance(obj, (type, type(course_file))):
            obj = getattr(obj, "__func__", None) or type(obj)
        members = vars(obj).values() if isinstance(obj, type) else [obj]
        for member in members:
            for part in (member, *(getattr(member, name, None) for name in ("__func__", "fget", "__wrapped__"))):
                if hasattr(part, "__code__"):
                    yield from _nested_codes(part.__code__)


def _name(callee) -> str:
    module = getattr(callee, "__module__", None) or type(getattr(callee, "__self__", None)).__name__
    return f"{module}.{getattr(callee, '__qualname__', getattr(callee, '__name__', repr(callee)))}"


def _refused_calls(autograd: bool) -> set:
    """The callables an answer may not call: they would switch the guard off or watch the checker; without
    ``autograd``, also autograd's entry points (and torch.func's)."""
    import _thread
    named = {sys: ("settrace", "setprofile"), gc: ("enable", "set_threshold"),
             threading: ("settrace", "setprofile", "settrace_all_threads", "setprofile_all_threads"),
             _thread: ("start_new_thread", "start_joinable_thread", "start_new"),
             signal: ("signal", "setitimer", "alarm", "set_wakeup_fd", "pthread_kill", "pthread_sigmask",
                      "raise_signal"),
             getattr(sys, "monitoring", None): ("use_tool_id", "free_tool_id", "clear_tool_id", "register_callback",
                                                "set_events", "set_local_events", "restart_events"),
             torch._C: ("_pop_torch_dispatch_stack", "_push_on_torch_dispatch_stack", "_set_dispatch_mode",
                        "_unset_dispatch_mode", "_dispatch_tls_set_dispatch_key_excluded",
                        "_dispatch_tls_set_dispatch_key_included",
                        "_ExcludeDispatchKeyGuard", "_IncludeDispatchKeyGuard", "_ForceDispatchKeyGuard",
                        "_DisableTorchDispatch", "_DisablePythonDispatcher")}
    refused = {getattr(owner, name) for owner, names in named.items() for name in names if hasattr(owner, name)}
    if not autograd:
        refused |= {value for value in vars(torch._C._functorch).values() if callable(value)}
        refused |= {torch.autograd.Variable._execution_engine.run_backward, torch.autograd.grad,
                    torch.autograd.backward, torch.Tensor.backward}
    return refused


# --------------------------------------------------------------------------------- watching the answer's calls

class _Watch:
    """What the answer may run (``given`` and this module, by identity), in which thread, and what it did that
    it may not (``refusals``)."""

    def __init__(self, given, autograd: bool):
        self.thread = threading.get_ident()
        self.autograd = autograd
        self.refusals = []
        own = (value for value in globals().values() if getattr(value, "__module__", None) == __name__)
        self._kept = list(_codes(given)) + list(_codes(own))
        self.allowed = {id(code) for code in self._kept}
        self.fingerprints = course_fingerprints()
        self.refused = _refused_calls(autograd)
        self.hash_safe = {type(callee) for callee in self.refused}  # types whose hash runs no Python code
        self.refused_codes = {id(f.__code__) for f in self.refused if hasattr(f, "__code__")}
        self._verdicts = {}  # id(code) -> (code, why it is refused, or None)

    def refuse(self, reason: str):
        self.refusals.append(reason)
        raise Refused(reason)

    def started(self, code):
        """A Python function starts or resumes."""
        entry = self._verdicts.get(id(code))
        if entry is None or entry[0] is not code:
            entry = self._verdicts[id(code)] = (code, self._verdict(code))
        if entry[1]:
            self.refuse(entry[1])

    def _verdict(self, code) -> str | None:
        if id(code) in self.allowed:
            return None
        where = course_file(code.co_filename)
        if where:
            return f"your code ran {code.co_qualname} from {where}: write the exercise's code yourself"
        copied = self.fingerprints.get(_fingerprint(code))
        if copied:
            return f"your code ran a copy of the course's {copied}: write the exercise's code yourself"
        if id(code) in self.refused_codes or not self.autograd and code.co_filename.startswith(_AUTOGRAD_FILES):
            return f"your code called {code.co_qualname}, which this check does not allow"
        return None

    def called(self, caller, callee):
        """Code ``caller`` (of the answer's thread) calls ``callee``."""
        if id(caller) in self.allowed or threading.get_ident() != self.thread or type(callee) not in self.hash_safe:
            return
        if callee in self.refused:
            self.refuse(f"your code called {_name(callee)}, which this check does not allow")


class _Profiler:
    """Python 3.11: the profile function of the answer's thread."""

    gru_course_window = True  # what the audit hook looks for

    def __init__(self, watch: _Watch):
        self.watch = watch

    def __call__(self, frame, event, arg):
        if event == "call":
            self.watch.started(frame.f_code)
        elif event == "c_call":
            self.watch.called(frame.f_code, arg)


@contextlib.contextmanager
def _profiling(watch: _Watch):
    """Python 3.11: ``sys.setprofile``; yields a function that says whether it is still in place."""
    if sys.getprofile() is not None:
        raise Breach("a profiler is running (%prun, cProfile): run this cell without it")
    profiler = _Profiler(watch)
    sys.setprofile(profiler)
    try:
        yield lambda: sys.getprofile() is profiler
    finally:
        sys.setprofile(None)


@contextlib.contextmanager
def _monitoring(watch: _Watch):
    """Python 3.12+: ``sys.monitoring`` (every thread); yields a function that says whether it is still in place."""
    monitoring = sys.monitoring
    events = monitoring.events
    tool = next((i for i in (4, 3, 5, 2) if monitoring.get_tool(i) is None), None)
    if tool is None:
        raise Breach("every sys.monitoring tool id is taken (debuggers, profilers): close them and run the cell again")
    monitoring.use_tool_id(tool, TOOL_NAME)
    starts = (events.PY_START, events.PY_RESUME, events.PY_THROW)  # a function starts, or a generator resumes
    wanted = events.CALL | events.PY_START | events.PY_RESUME | events.PY_THROW
    try:
        for event in starts:
            monitoring.register_callback(tool, event, lambda code, offset, *exception: watch.started(code))
        monitoring.register_callback(tool, events.CALL, lambda code, offset, callee, arg: watch.called(code, callee))
        monitoring.set_events(tool, wanted)
        yield lambda: monitoring.get_tool(tool) == TOOL_NAME and monitoring.get_events(tool) == wanted
    finally:
        with contextlib.suppress(ValueError):
            monitoring.set_events(tool, 0)
            for event in (events.CALL, *starts):
                monitoring.register_callback(tool, event, None)
            monitoring.free_tool_id(tool)


_watching = _monitoring if sys.version_info >= (3, 12) else _profiling


# ------------------------------------------------------------------------------ watching torch's operations

class _TorchWatch(TorchDispatchMode):
    """Sees every ATen operation of the answer: refuses torch's recurrent kernels, autograd (unless
    ``autograd``), and, when ``known`` tensors are given, any input that is neither one of them nor the output
    of an operation it saw; counts matrix products."""

    def __init__(self, watch: _Watch, autograd: bool, known=None):
        super().__init__()
        self.watch, self.autograd, self.products = watch, autograd, 0
        self.known = None if known is None else {id(t): t for t in known}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func._schema.name
        if _RECURRENT.search(name):
            self.watch.refuse(f"your code used torch's recurrent layers (torch ran {name}), which do the exercise's "
                              "work: write it with tensor operations")
        if not self.autograd and (torch.is_grad_enabled() or _DERIVATIVE.search(name)):
            self.watch.refuse("your code used autograd (torch computed a derivative): compute each gradient with "
                              "the backward equations")
        self.products += bool(_PRODUCT.match(name)) and not _NOT_PRODUCT.search(name)
        if self.known is not None and any(id(t) not in self.known for t in _tensors((args, kwargs))):
            self.watch.refuse("your code used a tensor computed out of the check's sight (numpy, Python lists, or "
                              "a tensor made outside the function): compute everything from the arguments")
        out = func(*args, **kwargs)
        if self.known is not None:
            self.known.update((id(t), t) for t in _tensors(out))
        return out


def _tensors(tree):
    """The tensors in nested tuples, lists and dicts."""
    if isinstance(tree, _BASE):
        yield tree
    elif isinstance(tree, (tuple, list)):
        for item in tree:
            yield from _tensors(item)
    elif isinstance(tree, dict):
        for item in tree.values():
            yield from _tensors(item)


# -------------------------------------------------------------------------------------------- the audit hook

def window_open() -> bool:
    """Whether an answer is running under a guard now (the audit hook acts only then)."""
    if sys.version_info >= (3, 12):
        return any(sys.monitoring.get_tool(i) == TOOL_NAME for i in range(6))
    return getattr(sys.getprofile(), "gru_course_window", False) is True


_PROCESSES = ("os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork", "os.forkpty", "os.kill",
              "subprocess.Popen", "pty.spawn")
_INTROSPECTION = ("gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys._current_frames",
                  "sys._current_exceptions")


class _HookRefused(RuntimeError):
    """Refuses ``sys.addaudithook`` (Python drops the new hook silently)."""


def _audit(event, args, course_file=course_file, window_open=window_open, refused=Refused):
    if event == "open":
        where = window_open() and course_file(args[0])
        if where:
            raise refused(f"your code opened {where}: write the exercise's code yourself")
    elif event in _INTROSPECTION or event.startswith(("ctypes.", *_PROCESSES)):
        if window_open():
            raise refused(f"your code used {event}, which this check does not allow")
    elif event == "sys.addaudithook" and window_open():
        raise _HookRefused(event)


def _is_refusal(error) -> bool:
    """A :class:`Refused` of this module or of the shared one (the audit hook's)."""
    return isinstance(error, (Breach, PermissionError)) and type(error).__name__ in ("Refused", "Breach")


def _self_test() -> str | None:
    """Inside the window: the audit hook must refuse to open this file."""
    try:
        open(THIS_FILE, "rb").close()
    except PermissionError as error:
        if _is_refusal(error):
            return None
    return "the checker's file guard is missing in this kernel (utils.answer_guard was changed): restart the kernel"


# ----------------------------------------------------------------- what the notebook runs beside the answer

def _code_of(obj):
    for candidate in (obj, getattr(obj, "__func__", None), getattr(type(obj), "__call__", None)):
        if hasattr(candidate, "__code__"):
            return candidate.__code__
    return None


def _trusted(code) -> bool:
    """Whether ``code`` (of a hook, a handler, a thread) is a library's or the course's, not the notebook's."""
    return code is None or code.co_filename.startswith("<frozen") or os.path.realpath(code.co_filename).startswith(
        _TRUSTED)


def _planted() -> str | None:
    """A tracer, signal handler or thread of the notebook's own code (it could watch the checker's frames)."""
    for what, hook in (("sys.settrace", sys.gettrace()), ("sys.setprofile", sys.getprofile()),
                       ("threading.settrace", threading.gettrace()), ("threading.setprofile", threading.getprofile())):
        if hook is not None and not _trusted(_code_of(hook)):
            return f"a trace or profile function of your code is set ({what})"
    for number, handler in _signal_handlers().items():
        if callable(handler) and not _trusted(_code_of(handler)):
            return f"a signal handler of your code is set ({signal.Signals(number).name})"
    for ident, frame in sys._current_frames().items():
        while ident != threading.get_ident() and frame is not None:
            if not _trusted(frame.f_code):
                return "a thread of your code is running"
            frame = frame.f_back
    return None


def _signal_handlers() -> dict:
    handlers = {}
    for number in signal.valid_signals():
        with contextlib.suppress(ValueError, OSError):
            handlers[number] = signal.getsignal(number)
    return handlers


def _state() -> dict:
    """What an answer must leave as it found it."""
    return {"a trace function (sys.settrace)": sys.gettrace(),
            "threading's trace or profile function": (threading.gettrace(), threading.getprofile()),
            "the garbage collector": (gc.isenabled(), gc.get_threshold(), tuple(gc.callbacks)),
            "a signal handler": _signal_handlers(),
            "torch's modes": (torch._C._len_torch_function_stack(), len(_get_current_dispatch_mode_stack()))}


# ---------------------------------------------------------------------------------------------- the answer

def plain(value):
    """``value`` with each tensor (alone, or in a tuple, list or dict with str keys) replaced by a plain copy,
    a tuple's subclass (a named tuple) by a tuple; a tensor subclass is refused: it can make any comparison pass."""
    kind = type(value)
    if kind is PLAIN:
        with torch._C.DisableTorchFunction():
            return _BASE.clone(_BASE.detach(value))
    if issubclass(kind, _BASE):
        raise Refused(f"your code returned a {kind.__name__}, a subclass of torch.Tensor: return plain tensors")
    if issubclass(kind, tuple):
        return tuple(plain(item) for item in tuple.__iter__(value))
    if issubclass(kind, list):
        return [plain(item) for item in list.__iter__(value)]
    if issubclass(kind, dict):
        return {key: plain(item) for key, item in dict.items(value) if type(key) is str}
    return value


def _modes_left(torch_watch: _TorchWatch, function_modes: int) -> str | None:
    """Which torch modes the answer left above the guard's (it could make any tensor lie), after taking them
    off again."""
    left = []
    while (stack := _get_current_dispatch_mode_stack()) and stack[-1] is not torch_watch:
        left.append(type(torch._C._pop_torch_dispatch_stack()).__name__)
    while torch._C._len_torch_function_stack() > function_modes:
        left.append(type(torch._C._pop_torch_function_stack()).__name__)
    return f"torch modes ({', '.join(left)})" if left else None


def _described(error: Exception) -> Exception:
    """A breach as it is; any other exception as :class:`Raised` (its message read now, while watched)."""
    if _is_refusal(error):
        return error
    try:
        message = str(error)
    except Exception:  # an exception whose str fails
        message = "(its message cannot be shown)"
    return Raised(type(error).__name__, message, issubclass(type(error), NotImplementedError))


@contextlib.contextmanager
def collector_paused():
    """No cyclic garbage collection inside, so that no finalizer of an answer's garbage runs while the checker
    computes and compares: a check runs its answers and its comparisons inside."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _warning_line(record) -> str:
    text = str(record.message).strip().split("\n")[0]
    return f"{record.category.__name__}: {text[:97] + '...' if len(text) > 100 else text}"


def run(answer, *args, given=(), autograd=True, sight=False) -> Outcome:
    """Call ``answer(*args)`` in the window (see the module docstring): ``given`` are the objects whose code the
    answer may run although it is the course's; ``autograd=False`` refuses autograd; ``sight=True`` refuses
    tensors that are neither ``args`` nor computed by torch in the window. Returns the :class:`Outcome`; raises
    :class:`Breach`, or :class:`Raised` for the answer's own exception."""
    planted = _planted()
    if planted:
        raise Breach(f"{planted}, which could watch the check: restart the kernel and run the notebook without it")
    before, watch = _state(), _Watch(given, autograd)
    torch_watch = _TorchWatch(watch, autograd, args if sight else None)
    value = error = missing = None
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
        function_modes = torch._C._len_torch_function_stack()
        with torch_watch:
            torch.zeros(())  # the mode's first operation imports torch._dynamo: not in the answer's window
            with _watching(watch) as in_place:
                missing = _self_test()
                try:
                    raw = answer(*args)
                    modes_left = _modes_left(torch_watch, function_modes)
                    if modes_left:
                        raise Breach(f"your code left {modes_left} active")
                    value = plain(raw)
                    del raw  # its finalizers run now, still watched
                except Exception as exception:
                    error = _described(exception)
                    del exception
                intact = in_place()
    if watch.refusals:
        raise Breach(watch.refusals[0])
    if _is_refusal(error):
        raise Breach(str(error))
    if missing or not intact:
        raise Breach(missing or "your code switched off the checker's call monitor")
    after = _state()
    changed = next((what for what in before if before[what] != after[what]), None)
    if changed:
        raise Breach(f"your code changed {changed} while it was checked")
    planted = _planted()
    if planted:
        raise Breach(f"after your code ran, {planted}: an answer must leave nothing running")
    if error is not None:
        raise error
    return Outcome(value, torch_watch.products, tuple(_warning_line(record) for record in caught))


if __name__ == "utils.answer_guard":  # the shared module, imported once per process; fresh copies add no hook
    sys.addaudithook(_audit)
