"""``voxmesh serve vad``: the engine picked from the settings, behind the servicer."""

from __future__ import annotations

import grpc

from voxmesh.server import ServiceSpec
from voxmesh.services.vad.engine import create_engine
from voxmesh.services.vad.servicer import VadServicer
from voxmesh.services.vad.settings import VadSettings
from voxmesh.v1 import vad_pb2, vad_pb2_grpc


def build_spec(settings: VadSettings) -> ServiceSpec:
    servicer = VadServicer(create_engine(settings.engine), settings)

    def register(server: grpc.aio.Server) -> None:
        vad_pb2_grpc.add_VoiceActivityServicer_to_server(servicer, server)

    return ServiceSpec(
        slots=servicer.slots,
        name="vad",
        service_names=[vad_pb2.DESCRIPTOR.services_by_name["VoiceActivity"].full_name],
        register=register,
    )
