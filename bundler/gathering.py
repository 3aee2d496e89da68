"""Gather what the artifact carries beyond libraries: the recipes that apply, --data,
--helper, --env and --from-package, into the facts the plan lays out.

The order of precedence is the user's over the recipes': an --env of a name a recipe
sets replaces the recipe's value (the report shows which applied); the same file asked
for twice is carried once (plan.py refuses two different files at one place).
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

from bundler.carried_files import CarriedTrees, walk_carries
from bundler.carry import Carry, EnvValue, Helper, Recipe
from bundler.elf import read_elf
from bundler.errors import InputError
from bundler.inputs import SysrootInput
from bundler.plan import Carrying, EnvSetting, ProgramPlace, StagedFile
from bundler.resolve import Closure
from bundler.sysroot import Sysroot

NO_TREES = CarriedTrees((), (), ())


@dataclass(frozen=True)
class Gathered:
    """What carrying found, before the programs and plugins in it are resolved."""

    recipes: tuple[Recipe, ...] = ()
    declined: tuple[Recipe, ...] = ()  # recognised, but --no-recipes: the scan names them
    trees: CarriedTrees = NO_TREES
    helpers: tuple[tuple[Helper, str], ...] = ()  # each with its program's host path
    env: tuple[EnvSetting, ...] = ()
    locales: tuple[str, ...] = ()
    args: tuple[tuple[str, tuple[str, ...]], ...] = ()  # program label -> launcher args

    @property
    def program_paths(self) -> tuple[str, ...]:
        """The host paths of the helpers and tree programs, each once, in order."""
        paths = [host for _, host in self.helpers]
        paths += [f.source for f in self.trees.files if f.kind == "program" and f.source]
        return tuple(dict.fromkeys(paths))

    @property
    def plugin_paths(self) -> tuple[str, ...]:
        paths = [f.source for f in self.trees.files if f.kind == "plugin" and f.source]
        return tuple(dict.fromkeys(paths))

    def layout(self, closures: Sequence[Closure], given_count: int) -> Carrying:
        """Where each program's launchers go and each plugin lies: the plan's input. The
        first `given_count` closures are the programs given; the place that comes first
        for a file decides whether it is a helper (a given program never is)."""
        args = dict(self.args)
        places: dict[str, ProgramPlace] = {}

        def place(path: str, new: ProgramPlace) -> None:
            old = places.get(path)
            if old is None:
                places[path] = new
            else:  # one file at several places: one copy, a launcher at each
                places[path] = dataclasses.replace(
                    old, launchers=tuple(dict.fromkeys((*old.launchers, *new.launchers))))

        # bin/NAME for each program given, also when a tree or a helper is the same file
        for closure in closures[:given_count]:
            place(closure.program.path, ProgramPlace(
                (f"bin/{closure.program_label}",), args=args.get(closure.program_label, ())))
        for helper, host in self.helpers:
            place(host, ProgramPlace((helper.dest,), helper=True))
        plugin_dests: dict[str, str] = {}
        files: list[StagedFile] = []
        for item in self.trees.files:
            if item.kind == "program":
                assert item.source is not None
                place(item.source, ProgramPlace((item.dest,), in_tree=True))
            elif item.kind == "plugin":
                assert item.source is not None
                first = plugin_dests.setdefault(item.source, item.dest)
                if first != item.dest:  # the same object twice: a link to the first
                    files.append(StagedFile(item.dest, "alias", 0o777,
                                            link_target=_relative(first, item.dest)))
            elif item.kind == "alias":
                files.append(StagedFile(item.dest, "alias", 0o777,
                                        link_target=item.link_target))
            else:
                files.append(StagedFile(item.dest, "data", item.mode, source=item.source,
                                        mtime=item.mtime))
        return Carrying(places, plugin_dests, tuple(files))


def _relative(target: str, link: str) -> str:
    return posixpath.relpath(target, posixpath.dirname(link))


def gather(sysroot: Sysroot, programs: Sequence[SysrootInput], closures: Sequence[Closure],
           data: Sequence[Carry], helpers: Sequence[Helper], env: Sequence[EnvValue],
           from_package: bool, use_recipes: bool) -> Gathered:
    """The recipes recognised in the programs' closures, and everything asked for."""
    from bundler.recipes import recognise

    recipes = tuple(recognise(closures, sysroot))
    declined: tuple[Recipe, ...] = ()
    if not use_recipes:
        recipes, declined = (), recipes
    carries = [*data]
    if from_package:
        from bundler.package_files import package_carries

        target = sysroot.target_path(programs[0].path) or programs[0].path
        owned = package_carries(sysroot, target)
        carries += owned.carries
    carries += [c for r in recipes for c in r.carry]
    trees = _of_the_architecture(walk_carries(carries, sysroot),
                                 closures[0].program.ident.machine)
    wanted = [*helpers, *(h for r in recipes for h in r.helpers)]
    found_helpers = tuple((h, _helper_host(h, sysroot)) for h in _unique_helpers(wanted))
    return Gathered(
        recipes=recipes, declined=declined, trees=trees, helpers=found_helpers,
        env=_settings(env, recipes),
        locales=tuple(dict.fromkeys(n for r in recipes for n in r.locales)),
        args=tuple((r.program, r.args) for r in recipes if r.program and r.args))


def _of_the_architecture(trees: CarriedTrees, machine: str) -> CarriedTrees:
    """The trees with programs and plugins of another architecture than the programs'
    carried as plain data (they could not load into these programs anyway), each noted."""
    files, notes = [], list(trees.notes)
    for item in trees.files:
        if item.kind in ("program", "plugin") and item.source is not None:
            other = read_elf(item.source).ident.machine
            if other != machine:
                notes.append(f"{item.target} ({item.why}): {other}, not {machine}: carried "
                             "as data, without its libraries")
                item = dataclasses.replace(item, kind="data")
        files.append(item)
    return CarriedTrees(tuple(files), trees.carried, tuple(notes))


def _unique_helpers(helpers: Sequence[Helper]) -> list[Helper]:
    seen: dict[str, Helper] = {}
    for helper in helpers:
        if helper.dest in seen and seen[helper.dest].source != helper.source:
            raise InputError(f"{helper.why} {helper.source}: {helper.dest} is already "
                             f"{seen[helper.dest].source}'s launcher")
        seen.setdefault(helper.dest, helper)
    return list(seen.values())


def _helper_host(helper: Helper, sysroot: Sysroot) -> str:
    resolved = sysroot.resolve(helper.source)
    if resolved is None or not sysroot.is_file(resolved):
        raise InputError(f"{helper.why} {helper.source}: not a file in the build root "
                         f"{sysroot.root}")
    return sysroot.host_path(resolved)


def _settings(env: Sequence[EnvValue], recipes: Sequence[Recipe]) -> tuple[EnvSetting, ...]:
    """The recipes' variables, then the user's: an --env replaces a recipe's of its name;
    one name given twice with --env is refused."""
    chosen: dict[str, EnvValue] = {}
    for recipe in recipes:
        for value in recipe.env:
            chosen.setdefault(value.name, value)
    given: set[str] = set()
    for value in env:
        if value.name in given:
            raise InputError(f"--env {value.name}: given twice")
        given.add(value.name)
        chosen[value.name] = value
    return tuple(EnvSetting(v.name, v.name, "", value=v.value, why=v.why)
                 for v in chosen.values())
