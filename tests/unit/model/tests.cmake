spoke_test(test_model ${CMAKE_CURRENT_LIST_DIR}/test_model.c LABELS unit)
spoke_test(test_arch_load ${CMAKE_CURRENT_LIST_DIR}/test_arch_load.c LABELS unit)
