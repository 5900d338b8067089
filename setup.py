"""Build hook: generate the voxmesh.v1 gRPC stubs from protos/ with grpcio-tools.

Generated code is never committed or edited by hand; `pip install .` (and an
editable install) runs protoc so a clean clone always gets importable stubs
with .pyi types.
"""

from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).parent
PROTO_ROOT = ROOT / "protos"


def generate_stubs() -> None:
    """Run protoc over protos/voxmesh/v1/*.proto into voxmesh/v1/."""
    import grpc_tools
    from grpc_tools import protoc

    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / "voxmesh" / "v1").glob("*.proto"))
    include = str(Path(grpc_tools.__file__).parent / "_proto")
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={ROOT}",
        f"--pyi_out={ROOT}",
        f"--grpc_python_out={ROOT}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")
    (ROOT / "voxmesh" / "v1" / "__init__.py").write_text(
        '"""Generated gRPC stubs (voxmesh.v1). Do not edit."""\n'
    )


class BuildWithStubs(build_py):
    def run(self) -> None:
        generate_stubs()
        # find_packages ran before the stubs existed on a clean clone.
        if "voxmesh.v1" not in (self.packages or []):
            self.packages = [*(self.packages or []), "voxmesh.v1"]
        super().run()


# DESIGN.md's layout keeps each service and the gateway in top-level folders
# (services/, gateway/); they install as subpackages of voxmesh.
SUBTREES = {"voxmesh.services": "services", "voxmesh.gateway": "gateway"}
PACKAGES = [p for p in find_packages(include=["voxmesh", "voxmesh.*"]) if p != "voxmesh.v1"]
for package, folder in SUBTREES.items():
    PACKAGES += [package, *(f"{package}.{sub}" for sub in find_packages(folder))]

setup(
    packages=PACKAGES,
    package_dir={"voxmesh": "voxmesh", **SUBTREES},
    cmdclass={"build_py": BuildWithStubs},
)
