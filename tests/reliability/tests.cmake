# allocsweep: allocation-failure sweeps of every parser, run by `make reliability`
# (tools/reliability.py), not by ctest.
if(NOT SPOKE_FUZZ)
  add_executable(allocsweep ${CMAKE_CURRENT_LIST_DIR}/allocsweep.c)
  target_link_libraries(allocsweep PRIVATE spoke_app)
endif()
