"""``voxmesh serve orpheus``: the engine picked from the settings, behind the servicer."""

from __future__ import annotations

import logging

import grpc

from voxmesh.gpu_driver import check_driver_for_engine
from voxmesh.model_source import MODEL_ENGINES
from voxmesh.server import ServiceSpec
from voxmesh.services.orpheus.engine import create_engine
from voxmesh.services.orpheus.servicer import OrpheusServicer
from voxmesh.services.orpheus.settings import OrpheusSettings
from voxmesh.services.orpheus.voices import resolve_voice
from voxmesh.v1 import orpheus_pb2, orpheus_pb2_grpc

log = logging.getLogger(__name__)


def build_spec(settings: OrpheusSettings) -> ServiceSpec:
    resolve_voice(settings.voice, settings.voice, field="voice")
    # Settings that cannot work are refused here, once, not on every phrase.
    for warning in settings.check():
        log.warning(warning)
    check_driver_for_engine(settings.engine, settings.device)
    engine = create_engine(settings)
    servicer = OrpheusServicer(engine, settings)

    def register(server: grpc.aio.Server) -> None:
        orpheus_pb2_grpc.add_OrpheusServicer_to_server(servicer, server)

    return ServiceSpec(
        slots=servicer.slots,
        name="orpheus",
        service_names=[orpheus_pb2.DESCRIPTOR.services_by_name["Orpheus"].full_name],
        register=register,
        startup=engine.start,
        shutdown=engine.close,
        # Named in the one line that says a model could not be loaded.
        models={"--model": settings.model, "--snac-model": settings.snac_model}
        if settings.engine in MODEL_ENGINES
        else {},
    )
